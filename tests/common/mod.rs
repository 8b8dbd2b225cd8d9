//! Helpers shared by the integration tests: the real server started on a
//! free loopback port, and a minimal blocking HTTP/1.1 client (one request
//! per connection) so tests talk to it over a real socket without pulling
//! in an HTTP client crate.

#![allow(dead_code, unreachable_pub)]

pub mod capture;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tidemark::config::Config;
use tidemark_storage::{Db, Matcher, Options};

/// Reads the stderr of a spawned `tidemark serve` until it says where it
/// listens; the reader is returned so the caller keeps draining it.
pub fn wait_listening<R: std::io::BufRead>(mut stderr: R) -> (SocketAddr, R) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited before listening"
        );
        if let Some(a) = line.trim().strip_prefix("tidemark listening on http://") {
            return (a.parse().unwrap(), stderr);
        }
    }
}

/// The real server on a free loopback port, over a temporary data dir.
pub struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<tidemark::server::Running>,
    pub db: Arc<Db>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.storage.data_dir = dir.path().to_path_buf();
        tweak(&mut cfg);
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = rt
            .block_on(tidemark::server::start(db.clone(), cfg))
            .unwrap();
        Server {
            rt,
            running: Some(running),
            db,
            _dir: dir,
        }
    }

    /// The server's data directory (`storage.data_dir`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    /// (timestamp, value) of the one series matching `name` and `k=v`.
    pub fn samples(&self, name: &str, k: &str, v: &str) -> Vec<(i64, f64)> {
        let ids = self
            .db
            .select(&[Matcher::equal("__name__", name), Matcher::equal(k, v)]);
        assert_eq!(ids.len(), 1, "one series {name}{{{k}={v:?}}}");
        let got = self.db.read(&ids, i64::MIN, i64::MAX).unwrap();
        got[0].1.iter().map(|s| (s.ts, s.value)).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole response (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    request(addr, "POST", path, headers, body)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// A remote-write `TimeSeries` from label pairs and `(timestamp, value)`s.
pub fn rw_series(
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
) -> tidemark::ingest::remote_write::TimeSeries {
    use tidemark::ingest::remote_write::{Label, Sample, TimeSeries};
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| Sample {
                timestamp: *t,
                value: *v,
            })
            .collect(),
    }
}
