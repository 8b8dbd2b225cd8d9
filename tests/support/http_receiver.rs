//! A capturing HTTP receiver for tests: listens on 127.0.0.1:0, records
//! every request (method, path, headers, body) and answers the n-th one
//! with a scripted status and body (then `200 ok`), so channel tests can
//! check exactly what was POSTed and how errors and retries behave.
//! (`common/capture.rs` answers every request with one settable status and
//! no body; the Slack tests need a per-request script, for retries inside
//! one dispatcher call, and answer bodies, which Slack's errors carry.)
//!
//! Invariant: a request is recorded before it is answered, so once the
//! client has its response the request is visible in [`HttpReceiver::requests`].

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One captured request.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers the n-th request with `script[n]` (status, body), then `200 ok`.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Captured>>>,
}

impl HttpReceiver {
    pub fn start(script: &[(u16, &str)]) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script: Vec<(u16, String)> = script.iter().map(|(s, b)| (*s, b.to_string())).collect();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let Some(req) = read_request(&mut s) else {
                    continue;
                };
                let n = {
                    let mut g = sink.lock().unwrap();
                    g.push(req);
                    g.len() - 1
                };
                let (status, body) = script.get(n).cloned().unwrap_or((200, "ok".into()));
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HttpReceiver { addr, got }
    }

    pub fn url(&self) -> String {
        format!("http://{}/services/T000/B000/XXXX", self.addr)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(s: &mut std::net::TcpStream) -> Option<Captured> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Captured {
        method,
        path,
        headers,
        body,
    })
}
