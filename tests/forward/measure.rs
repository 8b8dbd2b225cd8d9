//! Figures (an ignored test): ingest CPU with forwarding on vs off, and
//! forwarding throughput to a local Tidemark.

use super::*;

/// Process CPU time (user + system) in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// CPU per ingested sample with forwarding off and on (to a refused port:
/// the ingest path's share: feed, filter, queue append; no sending), and
/// forwarding throughput to a local Tidemark (a filled queue drained into
/// a target started afterwards). Figures, not assertions:
/// `cargo test --release --test forward -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_forwarding() {
    const BATCH: i64 = 5_000;
    let batches: i64 = std::env::var("FORWARD_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let total = (BATCH * batches) as f64;
    let t0 = now_ms() - 3_000_000;
    let bodies: Vec<String> = (0..batches)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    format!(
                        "bench,host=h{} value={} {}\n",
                        n % 1000,
                        n % 97,
                        t0 + n / 1000
                    )
                })
                .collect()
        })
        .collect();
    let ingest = |addr: SocketAddr| {
        let cpu = cpu_seconds();
        let wall = Instant::now();
        for b in &bodies {
            ingest_lp(addr, b);
        }
        (cpu_seconds() - cpu, wall.elapsed().as_secs_f64())
    };
    let rounds: usize = std::env::var("FORWARD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dead = refused_port();
    let mut rows = Vec::new();
    for round in 0..rounds {
        for on in [false, true] {
            let src = Server::start(|c| {
                c.rules.default_pack = false;
                if on {
                    c.forward = vec![ForwardConfig {
                        max_backoff: Duration::from_secs(5),
                        ..target("dead", dead)
                    }];
                }
            });
            let (cpu, wall) = ingest(src.addr());
            if on {
                wait_until("all queued", || {
                    metric(
                        src.addr(),
                        r#"tidemark_forward_queue_samples{target="dead"}"#,
                    ) == total
                });
            }
            rows.push((round, on, cpu, wall));
        }
    }
    for (round, on, cpu, wall) in &rows {
        println!(
            "round {round} forwarding {}: {:.3} us CPU/sample, {:.0} samples/s wall",
            if *on { "on " } else { "off" },
            cpu / total * 1e6,
            total / wall
        );
    }
    let median = |on: bool| {
        let mut v: Vec<f64> = rows.iter().filter(|r| r.1 == on).map(|r| r.2).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(false), median(true));
    println!(
        "median of {rounds} rounds: off {:.3} us/sample, on {:.3} us/sample, CPU ratio on/off {:.3}",
        off / total * 1e6,
        on / total * 1e6,
        on / off
    );

    // Throughput: fill a queue while the target is down, then start it.
    let port = refused_port();
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![ForwardConfig {
            max_samples_per_send: 2000,
            max_backoff: Duration::from_millis(20),
            ..target("rx", port)
        }];
    });
    ingest(src.addr());
    let queued = r#"tidemark_forward_queue_samples{target="rx"}"#;
    wait_until("all queued", || metric(src.addr(), queued) == total);
    let rx = Server::start(|c| {
        c.rules.default_pack = false;
        c.server.listen = port;
    });
    let started = Instant::now();
    let cpu = cpu_seconds();
    let sent = r#"tidemark_forward_samples_sent_total{target="rx"}"#;
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(src.addr(), sent) < total {
        assert!(Instant::now() < deadline, "drain timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {total} samples forwarded in {secs:.2} s = {:.0} samples/s \
         ({:.2} us CPU/sample for sender + receiver in one process)",
        total / secs,
        (cpu_seconds() - cpu) / total * 1e6
    );
    assert_eq!(sample_count(&rx.db, "bench_value"), total as usize);
}
