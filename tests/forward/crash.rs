//! A killed forwarding process loses nothing it acknowledged.

use super::*;

/// SIGKILL of a forwarding `tidemark serve` (the real binary) while it
/// ingests and forwards: after a restart over the same data directory,
/// every sample it acknowledged reaches the target (at least once).
#[test]
fn killed_sender_loses_nothing_it_acknowledged() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let rx = Server::start(|c| c.rules.default_pack = false);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("tidemark.toml");
    std::fs::write(
        &cfg,
        format!(
            "[rules]\ndefault_pack = false\n\n[[forward]]\nname = \"rx\"\n\
             url = \"http://{}/api/v1/write\"\nmax_samples_per_send = 300\n\
             batch_send_deadline = \"20ms\"\nmin_backoff = \"5ms\"\nmax_backoff = \"50ms\"\n",
            rx.addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tidemark binary");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let addr: SocketAddr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("tidemark serve started")
        .parse()
        .unwrap();
    let t0 = now_ms() - 600_000;
    for b in 0..20 {
        ingest_lp(addr, &lines("k", t0 + b * 250, 250));
    }
    // Killed mid-stream: some batches delivered, some in flight, some queued.
    child.kill().unwrap();
    child.wait().unwrap();
    let before = sample_count(&rx.db, "k_value");
    let src = Node::start(&data, loopback0(), |c| {
        c.forward = vec![target("rx", rx.addr())];
    });
    wait_until("every acknowledged sample at the target", || {
        sample_count(&rx.db, "k_value") == 5000
    });
    assert_eq!(dump(&rx.db, "k_value"), dump(&src.db, "k_value"));
    eprintln!("{before} of 5000 samples had arrived before the kill");
}
