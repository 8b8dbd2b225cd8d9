//! The real HTTP server on a real socket: line protocol and remote write
//! ingest (partial acceptance, gzip, limits, tokens), health endpoints, and
//! `tidemark serve` as a process shut down by SIGTERM.

mod common;

use std::io::{BufReader, Write};

use common::{Server, get, post};
use tidemark::ingest::remote_write::{self, WriteRequest};
use tidemark_storage::{Db, Matcher, Options};

#[test]
fn line_protocol_keeps_good_lines_and_names_the_bad_one() {
    let s = Server::start(|_| {});
    let body = "cpu,host=a usage=1.5,system=2i 1000\n\
                cpu,host=a usage=oops 2000\n\
                cpu,host=a usage=2.5 3000\n";
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "error");
    assert_eq!(j["accepted_samples"], 3);
    assert_eq!(j["rejected_lines"], 1);
    assert!(j["error"].as_str().unwrap().contains("line 2"), "{j}");
    assert_eq!(
        s.samples("cpu_usage", "host", "a"),
        vec![(1000, 1.5), (3000, 2.5)]
    );
    assert_eq!(s.samples("cpu_system", "host", "a"), vec![(1000, 2.0)]);

    // All good: 204. Seconds precision, via the v2 path, gzip-compressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"cpu,host=b usage=7 4\n").unwrap();
    let r = post(
        s.addr(),
        "/api/v2/write?precision=s",
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(s.samples("cpu_usage", "host", "b"), vec![(4000, 7.0)]);

    let r = post(
        s.addr(),
        "/write?precision=fortnights",
        &[],
        b"cpu usage=1 1\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("fortnights"));
}

#[test]
fn remote_write_rejects_only_the_invalid_series() {
    let s = Server::start(|_| {});
    let series = common::rw_series;
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("job", "api")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            series(&[("job", "nameless")], &[(1000, 1.0)]),
            series(&[("__name__", "up"), ("job", "web")], &[(1000, 1.0)]),
        ],
        metadata: vec![],
    };
    let r = post(
        s.addr(),
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        &remote_write::encode(&req),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["accepted_samples"].as_u64(),
            j["rejected_samples"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert!(j["error"].as_str().unwrap().contains("nameless"), "{j}");
    assert_eq!(
        s.samples("up", "job", "api"),
        vec![(1000, 1.0), (2000, 0.0)]
    );
    assert_eq!(s.samples("up", "job", "web"), vec![(1000, 1.0)]);

    let ok = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "up"), ("job", "api")],
            &[(3000, 1.0)],
        )],
        metadata: vec![],
    };
    let r = post(s.addr(), "/api/v1/write", &[], &remote_write::encode(&ok));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post(s.addr(), "/api/v1/write", &[], b"not snappy at all");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("snappy"), "{}", r.text());
}

#[test]
fn limits_and_tokens() {
    let s = Server::start(|c| {
        c.server.max_body_bytes = 1024;
        c.server.max_decompressed_bytes = 2048;
        c.limits.max_new_series_per_request = 2;
        c.auth.write_token = Some("sekret".into());
    });
    let auth = [("Authorization", "Bearer sekret")];
    let r = post(s.addr(), "/write", &[], b"m v=1\n");
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Bearer"), "{}", r.text());
    let r = post(
        s.addr(),
        "/write",
        &[("Authorization", "Bearer wrong")],
        b"m v=1\n",
    );
    assert_eq!(r.status, 401);

    let big = vec![b'#'; 4096];
    let r = post(s.addr(), "/write", &auth, &big);
    assert_eq!(r.status, 413, "body limit");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'#'; 256 << 10]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1024);
    let r = post(
        s.addr(),
        "/write",
        &[auth[0], ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("2048"), "{}", r.text());

    let r = post(
        s.addr(),
        "/write?precision=s",
        &auth,
        b"m,k=a v=1 1\nm,k=b v=1 1\nm,k=c v=1 1\n",
    );
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["accepted_samples"], 2);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("new series in one request"),
        "{j}"
    );

    assert_eq!(get(s.addr(), "/-/healthy").status, 200);
    assert_eq!(get(s.addr(), "/-/ready").status, 200);
}

/// `tidemark serve` as a process: flags override defaults, SIGTERM drains
/// and closes the database cleanly so the data is in partitions, not WAL.
#[test]
fn serve_binary_shuts_down_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--retention",
            "100y",
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held to the end so the child never writes into a closed pipe.
    let (addr, _stderr) = common::wait_listening(BufReader::new(child.stderr.take().unwrap()));
    // 2023 data: kept because of --retention 100y.
    let r = post(
        addr,
        "/write?precision=ms",
        &[],
        b"old,k=v x=42 1699920000000\n",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // The query command against the running server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args([
            "query",
            "--url",
            &format!("http://{addr}"),
            "--time",
            "1699920000",
            "--json",
            "old_x * 2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["data"]["result"][0]["value"],
        serde_json::json!([1699920000, "84"])
    );
    // SIGTERM through kill(1): no libc binding needed.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit}");
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let st = db.stats();
    assert_eq!(st.head_samples, 0, "nothing left to replay");
    // (The monitor's own series are there too: count only ours.)
    let ids = db.select(&[Matcher::equal("__name__", "old_x")]);
    assert_eq!(ids.len(), 1);
    let got = db.read(&ids, i64::MIN, i64::MAX).unwrap();
    assert_eq!(got[0].1.len(), 1);
    assert_eq!(got[0].1[0].value, 42.0);
}
