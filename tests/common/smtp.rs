//! A small SMTP server for tests: listens on 127.0.0.1:0 and records every
//! message it accepts (envelope, AUTH credentials, whether the session was
//! encrypted, the raw DATA), so the email channel is tested against a real
//! socket and the real `lettre` client, not a mock.
//!
//! Speaks what a mail client needs: EHLO/HELO, AUTH PLAIN and LOGIN (with
//! or without an initial response), MAIL FROM, RCPT TO, DATA (dot-stuffing
//! undone), RSET, NOOP, QUIT, and optionally STARTTLS or implicit TLS with a
//! rustls server config the test provides. With credentials configured it
//! refuses MAIL before a successful AUTH (530) and wrong credentials (535);
//! it can also answer MAIL with 451 a number of times (transient failure)
//! and refuse one recipient with 550.
//!
//! Invariants: a message is recorded before its `250` after DATA is sent, so
//! when the client's send returns the message is already visible through
//! [`SmtpServer::messages`]. One thread per connection; the listener thread
//! stops when the server is dropped.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the server encrypts sessions.
#[derive(Clone, Default)]
pub enum SmtpTls {
    /// Plain text only; STARTTLS is not offered.
    #[default]
    None,
    /// Plain text first; STARTTLS offered (and AUTH only after it).
    StartTls(Arc<rustls::ServerConfig>),
    /// TLS from the first byte (SMTPS, "implicit TLS").
    Implicit(Arc<rustls::ServerConfig>),
}

/// What the server accepts.
#[derive(Clone, Default)]
pub struct SmtpConfig {
    /// When set, MAIL needs a successful AUTH with exactly these.
    pub credentials: Option<(String, String)>,
    pub tls: SmtpTls,
    /// Answer MAIL with `451 4.3.0 try again later` this many times first.
    pub transient_failures: usize,
    /// Answer RCPT of this address with `550 5.1.1 no such user`.
    pub reject_recipient: Option<String>,
}

/// One accepted message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Received {
    /// The EHLO/HELO argument of the session.
    pub hello: String,
    /// Whether the message travelled over TLS.
    pub tls: bool,
    /// AUTH mechanism used (`PLAIN` or `LOGIN`) and the credentials given.
    pub auth: Option<(String, String, String)>,
    /// MAIL FROM address (without angle brackets).
    pub from: String,
    /// RCPT TO addresses, in order.
    pub to: Vec<String>,
    /// The message as sent in DATA (headers and body, CRLF line ends).
    pub data: String,
}

impl Received {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    /// The decoded text (LF line ends) of the part of this
    /// `multipart/alternative` message whose type starts with `mime`
    /// (`text/plain`, `text/html`); 7bit, base64 and quoted-printable
    /// transfer encodings are undone. Panics when there is no such part.
    pub fn mime_part(&self, mime: &str) -> String {
        let ct = self.header("Content-Type").expect("Content-Type");
        assert!(ct.starts_with("multipart/alternative"), "{ct}");
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .expect("boundary")
            .trim_matches('"')
            .to_string();
        let sep = format!("--{boundary}");
        for part in self.data.split(&sep).skip(1) {
            let Some((head, body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let head_lc = head.to_ascii_lowercase();
            if !head_lc.contains(&format!("content-type: {mime}")) {
                continue;
            }
            let body = body.trim_end_matches("\r\n");
            let bytes = if head_lc.contains("content-transfer-encoding: base64") {
                let joined: String = body.split("\r\n").collect();
                b64_decode(&joined).expect("base64 body")
            } else if head_lc.contains("content-transfer-encoding: quoted-printable") {
                qp_decode(body)
            } else {
                body.as_bytes().to_vec()
            };
            return String::from_utf8(bytes)
                .expect("UTF-8 body")
                .replace("\r\n", "\n");
        }
        panic!("no {mime} part in:\n{}", self.data)
    }
}

/// Quoted-printable (RFC 2045) to bytes; soft line breaks removed.
pub fn qp_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("QP escape");
            out.push(u8::from_str_radix(hex, 16).expect("QP hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A running test SMTP server.
pub struct SmtpServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    auth_failures: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    listener: Option<thread::JoinHandle<()>>,
}

/// Transient failures still to give, shared by all sessions.
type Budget = Arc<Mutex<usize>>;

impl SmtpServer {
    pub fn start(config: SmtpConfig) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let auth_failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let budget: Budget = Arc::new(Mutex::new(config.transient_failures));
        let handle = {
            let (received, auth_failures, stop) =
                (received.clone(), auth_failures.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = conn else { continue };
                    let (config, received, auth_failures, budget) = (
                        config.clone(),
                        received.clone(),
                        auth_failures.clone(),
                        budget.clone(),
                    );
                    thread::spawn(move || {
                        let mut s = Session::new(stream, config, received, auth_failures);
                        s.budget = budget;
                        let _ = s.run();
                    });
                }
            })
        };
        SmtpServer {
            addr,
            received,
            auth_failures,
            stop,
            listener: Some(handle),
        }
    }

    /// Messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Credentials of rejected AUTH attempts.
    pub fn auth_failures(&self) -> Vec<(String, String)> {
        self.auth_failures.lock().unwrap().clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Closed,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Closed => Ok(0),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Closed => Ok(()),
        }
    }
}

fn tls_conn(stream: TcpStream, cfg: &Arc<rustls::ServerConfig>) -> std::io::Result<Conn> {
    let conn = rustls::ServerConnection::new(cfg.clone()).map_err(std::io::Error::other)?;
    Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, stream))))
}

struct Session {
    conn: Conn,
    buf: Vec<u8>,
    config: SmtpConfig,
    received: Arc<Mutex<Vec<Received>>>,
    auth_failures: Arc<Mutex<Vec<(String, String)>>>,
    tls: bool,
    hello: String,
    auth: Option<(String, String, String)>,
    from: Option<String>,
    to: Vec<String>,
    budget: Budget,
}

type Io<T> = std::io::Result<T>;

impl Session {
    fn new(
        stream: TcpStream,
        config: SmtpConfig,
        received: Arc<Mutex<Vec<Received>>>,
        auth_failures: Arc<Mutex<Vec<(String, String)>>>,
    ) -> Session {
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Session {
            conn: Conn::Plain(stream),
            buf: Vec::new(),
            config,
            received,
            auth_failures,
            tls: false,
            hello: String::new(),
            auth: None,
            from: None,
            to: Vec::new(),
            budget: Budget::default(),
        }
    }

    fn reply(&mut self, text: &str) -> Io<()> {
        self.conn.write_all(text.as_bytes())?;
        self.conn.write_all(b"\r\n")?;
        self.conn.flush()
    }

    /// One line without its CRLF; `None` at end of stream.
    fn line(&mut self) -> Io<Option<String>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn run(mut self) -> Io<()> {
        if let SmtpTls::Implicit(cfg) = &self.config.tls {
            let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Closed) else {
                unreachable!()
            };
            self.conn = tls_conn(stream, cfg)?;
            self.tls = true;
        }
        self.reply("220 tidemark-test ESMTP ready")?;
        while let Some(line) = self.line()? {
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.hello = arg;
                    let offer_tls = matches!(self.config.tls, SmtpTls::StartTls(_)) && !self.tls;
                    let mut lines = vec!["250-tidemark-test".to_string()];
                    if offer_tls {
                        lines.push("250-STARTTLS".into());
                    } else {
                        lines.push("250-AUTH PLAIN LOGIN".into());
                    }
                    lines.push("250 8BITMIME".into());
                    self.reply(&lines.join("\r\n"))?;
                }
                "HELO" => {
                    self.hello = arg;
                    self.reply("250 tidemark-test")?;
                }
                "STARTTLS" => {
                    let SmtpTls::StartTls(cfg) = self.config.tls.clone() else {
                        self.reply("502 5.5.1 STARTTLS not offered")?;
                        continue;
                    };
                    if self.tls {
                        self.reply("503 5.5.1 already in TLS")?;
                        continue;
                    }
                    self.reply("220 2.0.0 ready to start TLS")?;
                    let Conn::Plain(stream) = std::mem::replace(&mut self.conn, Conn::Closed)
                    else {
                        unreachable!()
                    };
                    self.conn = tls_conn(stream, &cfg)?;
                    self.tls = true;
                    self.buf.clear();
                    self.hello.clear();
                    self.auth = None;
                }
                "AUTH" => self.auth(&arg)?,
                "MAIL" => {
                    if self.config.credentials.is_some() && self.auth.is_none() {
                        self.reply("530 5.7.0 authentication required")?;
                        continue;
                    }
                    {
                        let mut left = self.budget.lock().unwrap();
                        if *left > 0 {
                            *left -= 1;
                            drop(left);
                            self.reply("451 4.3.0 try again later")?;
                            continue;
                        }
                    }
                    self.from = Some(angle(&arg, "FROM:"));
                    self.to.clear();
                    self.reply("250 2.1.0 sender ok")?;
                }
                "RCPT" => {
                    if self.from.is_none() {
                        self.reply("503 5.5.1 MAIL first")?;
                        continue;
                    }
                    let rcpt = angle(&arg, "TO:");
                    if self.config.reject_recipient.as_deref() == Some(rcpt.as_str()) {
                        self.reply("550 5.1.1 no such user")?;
                        continue;
                    }
                    self.to.push(rcpt);
                    self.reply("250 2.1.5 recipient ok")?;
                }
                "DATA" => {
                    if self.to.is_empty() {
                        self.reply("503 5.5.1 RCPT first")?;
                        continue;
                    }
                    self.reply("354 end data with <CR><LF>.<CR><LF>")?;
                    let mut data = String::new();
                    loop {
                        let Some(l) = self.line()? else {
                            return Ok(());
                        };
                        if l == "." {
                            break;
                        }
                        data.push_str(l.strip_prefix('.').unwrap_or(&l));
                        data.push_str("\r\n");
                    }
                    let msg = Received {
                        hello: self.hello.clone(),
                        tls: self.tls,
                        auth: self.auth.clone(),
                        from: self.from.take().unwrap_or_default(),
                        to: std::mem::take(&mut self.to),
                        data,
                    };
                    self.received.lock().unwrap().push(msg);
                    self.reply("250 2.0.0 queued")?;
                }
                "RSET" => {
                    self.from = None;
                    self.to.clear();
                    self.reply("250 2.0.0 ok")?;
                }
                "NOOP" => self.reply("250 2.0.0 ok")?,
                "QUIT" => {
                    self.reply("221 2.0.0 bye")?;
                    return Ok(());
                }
                _ => self.reply("502 5.5.2 command not recognized")?,
            }
        }
        Ok(())
    }

    fn auth(&mut self, arg: &str) -> Io<()> {
        if matches!(self.config.tls, SmtpTls::StartTls(_)) && !self.tls {
            return self.reply("538 5.7.11 encryption required for AUTH");
        }
        let mut parts = arg.split_whitespace();
        let mech = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_string);
        let (user, pass) = match mech.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => r,
                    None => {
                        self.reply("334 ")?;
                        self.line()?.unwrap_or_default()
                    }
                };
                let raw = b64_decode(&resp).unwrap_or_default();
                let mut fields = raw.split(|b| *b == 0).map(String::from_utf8_lossy);
                let _authzid = fields.next();
                let user = fields.next().unwrap_or_default().into_owned();
                let pass = fields.next().unwrap_or_default().into_owned();
                (user, pass)
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => r,
                    None => {
                        self.reply("334 VXNlcm5hbWU6")?;
                        self.line()?.unwrap_or_default()
                    }
                };
                self.reply("334 UGFzc3dvcmQ6")?;
                let pass = self.line()?.unwrap_or_default();
                let d = |s: &str| {
                    String::from_utf8_lossy(&b64_decode(s).unwrap_or_default()).into_owned()
                };
                (d(&user), d(&pass))
            }
            _ => return self.reply("504 5.5.4 unrecognized authentication type"),
        };
        let ok = match &self.config.credentials {
            Some((u, p)) => *u == user && *p == pass,
            None => true,
        };
        if ok {
            self.auth = Some((mech, user, pass));
            self.reply("235 2.7.0 authentication successful")
        } else {
            self.auth_failures.lock().unwrap().push((user, pass));
            self.reply("535 5.7.8 authentication credentials invalid")
        }
    }
}

/// `FROM:<a@b> SIZE=1` → `a@b`.
fn angle(arg: &str, prefix: &str) -> String {
    let rest = if arg.len() >= prefix.len() && arg[..prefix.len()].eq_ignore_ascii_case(prefix) {
        &arg[prefix.len()..]
    } else {
        arg
    };
    let rest = rest.trim_start();
    match (rest.find('<'), rest.find('>')) {
        (Some(a), Some(b)) if a < b => rest[a + 1..b].to_string(),
        _ => rest.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// Standard base64 (with or without padding); `None` on a bad character.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
