//! The dashboard in a real browser: starts the real binary
//! (`tidemark serve --demo`, read and admin tokens configured) on a free
//! loopback port over a temporary data directory, then runs
//! `node tests/browser/dashboard.mjs <url> <artifacts>`, which drives
//! headless Chromium (Debian `chromium`, through `playwright-core`) and
//! checks health, charts, cards, a firing alert, silencing it from the UI,
//! acknowledging, expiring the silence, the event timeline, the query
//! explorer and the phone layout, and saves
//! screenshots to `target/browser-artifacts/`. Also runs the chart code's
//! unit tests (`node --test` in tests/browser).
//!
//! Missing node, npm packages or Chromium fail the test with the command
//! that installs them; it never skips.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const READ_TOKEN: &str = "dash-read-token";
const ADMIN_TOKEN: &str = "dash-admin-token";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Panics with install instructions unless node (and, for the browser
/// test, playwright-core and Chromium) are there.
fn require_tools(browser: bool) {
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "node is not installed: install Node.js >= 18 (Debian: apt-get install -y nodejs npm); \
             .ci/run does this"
        ),
    }
    if !browser {
        return;
    }
    let pw = browser_dir().join("node_modules/playwright-core/package.json");
    assert!(
        pw.exists(),
        "playwright-core is not installed: run `npm ci` in {} (.ci/run does this)",
        browser_dir().display()
    );
    assert!(
        chromium().exists(),
        "Chromium not found at {}: apt-get install -y chromium (or set CHROMIUM=/path); .ci/run does this",
        chromium().display()
    );
}

/// The server process; killed on drop.
struct ServerProc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tidemark serve --demo` and waits for its "listening on" line.
fn start_server(dir: &Path) -> (ServerProc, SocketAddr) {
    let cfg = dir.join("tidemark.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nread_token = \"{READ_TOKEN}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("serve")
        .arg("--demo")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tidemark binary");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
            log2.lock().unwrap().push(line);
        }
    });
    let proc = ServerProc { child, log };
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a.parse().expect("listen address"),
        Err(_) => panic!(
            "tidemark serve --demo did not start within 60 s; its stderr:\n{}",
            proc.log.lock().unwrap().join("\n")
        ),
    };
    (proc, addr)
}

/// Runs `cmd` to completion (killing it after `limit`); returns status
/// success and its stdout + stderr.
fn run(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
    match status {
        Some(st) => (st.success(), stdout, stderr),
        None => (false, stdout, format!("{stderr}\nkilled after {limit:?}")),
    }
}

#[test]
fn chart_code_unit_tests() {
    require_tools(false);
    let mut cmd = Command::new("node");
    cmd.arg("--test").current_dir(browser_dir());
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(120));
    assert!(ok, "node --test failed:\n{stdout}\n{stderr}");
    // The TAP summary names how many ran; an empty run would pass silently.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 15, "only {passed} node tests passed:\n{stdout}");
}

#[test]
fn dashboard_in_headless_chromium() {
    require_tools(true);
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start_server(dir.path());
    let artifacts = std::env::var_os("TIDEMARK_BROWSER_ARTIFACTS").map_or_else(
        || {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("browser-artifacts")
        },
        PathBuf::from,
    );
    for shot in ["dashboard-desktop.png", "dashboard-phone.png"] {
        let _ = std::fs::remove_file(artifacts.join(shot));
    }
    let url = format!("http://{addr}/?token={READ_TOKEN}&admin_token={ADMIN_TOKEN}");
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir().join("dashboard.mjs"))
        .arg(&url)
        .arg(&artifacts)
        .env("CHROMIUM", chromium());
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(360));
    let server_log = server.log.lock().unwrap().join("\n");
    assert!(
        ok,
        "dashboard browser test failed (screenshots in {}):\n{stdout}\n{stderr}\nserver stderr:\n{server_log}",
        artifacts.display()
    );
    for check in [
        "load",
        "health",
        "charts",
        "cards",
        "tooltip",
        "refresh",
        "alert",
        "silence",
        "acknowledge",
        "expire",
        "events",
        "explorer",
        "range",
        "phone",
        "screenshots",
        "token",
        "offline",
        "console",
    ] {
        assert!(
            stdout.contains(&format!("CHECK {check} ok:")),
            "no passed check {check:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("ALL CHECKS PASSED"), "{stdout}");
    for shot in ["dashboard-desktop.png", "dashboard-phone.png"] {
        let bytes = std::fs::read(artifacts.join(shot))
            .unwrap_or_else(|e| panic!("screenshot {shot} missing: {e}"));
        assert!(
            bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"),
            "{shot} is not a real PNG ({} bytes)",
            bytes.len()
        );
    }
    println!("{stdout}");
    drop(server);
}
