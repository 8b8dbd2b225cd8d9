//! "Send a test notification" end to end: the real server configured from
//! TOML with a receiver whose channels are Slack (a capturing HTTP receiver)
//! and email (the local SMTP server), driven through
//! `POST /api/v1/notifications/test` and through the real `tidemark notify
//! test` binary.

mod common;
#[path = "support/http_receiver.rs"]
mod http_receiver;
#[path = "common/smtp.rs"]
mod smtp;

use std::process::Command;

use common::{Server, post};
use http_receiver::HttpReceiver;
use serde_json::json;
use smtp::{SmtpConfig, SmtpServer};
use tidemark::config::Config;

const TOKEN: &str = "admin-secret";

/// A configuration file's text: receiver `team` posts to `slack` and mails
/// through `mail` (password in a file under `dir`), the way a user writes it.
fn config_toml(slack: &HttpReceiver, mail: &SmtpServer, dir: &std::path::Path) -> String {
    let pw = dir.join("smtp-password");
    std::fs::write(&pw, "mail-pass\n").unwrap();
    format!(
        r##"
[notify.route]
receiver = "team"

[[notify.receivers]]
name = "team"

[[notify.receivers.channels]]
type = "slack"
url = "{slack_url}"
channel = "#alerts"
username = "tidemark"

[[notify.receivers.channels]]
type = "email"
smarthost = "{smtp}"
from = "Tidemark <tidemark@example.com>"
to = ["oncall@example.com"]
tls = "none"
username = "tm"
password_file = "{pw}"
hello = "tidemark.test"
timeout = "5s"
"##,
        slack_url = slack.url(),
        smtp = mail.addr,
        pw = pw.display(),
    )
}

/// The real server with [`config_toml`]'s notifications and an admin token.
fn server(slack: &HttpReceiver, mail: &SmtpServer, dir: &std::path::Path) -> Server {
    let toml = config_toml(slack, mail, dir);
    let parsed = Config::from_toml(&toml, "test.toml").expect("config parses");
    Server::start(move |cfg| {
        cfg.notify = parsed.notify;
        cfg.auth.admin_token = Some(TOKEN.into());
    })
}

fn smtp_server() -> SmtpServer {
    SmtpServer::start(SmtpConfig {
        credentials: Some(("tm".into(), "mail-pass".into())),
        ..SmtpConfig::default()
    })
}

#[test]
fn test_endpoint_sends_through_slack_and_email() {
    let slack = HttpReceiver::start(&[]);
    let mail = smtp_server();
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&slack, &mail, dir.path());
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    let r = post(
        srv.addr(),
        "/api/v1/notifications/test",
        &headers,
        br#"{"receiver":"team"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"status": "success", "data": [
            {"channel": "slack", "outcome": "sent", "error": null},
            {"channel": "email", "outcome": "sent", "error": null},
        ]})
    );

    let got = slack.requests();
    assert_eq!(got.len(), 1);
    let v = got[0].json();
    assert_eq!(v["channel"], "#alerts");
    assert_eq!(v["username"], "tidemark");
    let att = &v["attachments"][0];
    assert_eq!(att["title"], "[FIRING:1] TidemarkTestNotification none");
    assert_eq!(att["color"], "#a0a0a0", "severity none is grey");
    let text = att["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "*[FIRING] Test notification from Tidemark: this channel works.* - `none`\n"
        ),
        "{text}"
    );

    let mails = mail.messages();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.hello, "tidemark.test");
    assert_eq!(m.auth.as_ref().map(|a| a.1.as_str()), Some("tm"));
    assert_eq!(m.auth.as_ref().map(|a| a.2.as_str()), Some("mail-pass"));
    assert_eq!(m.to, vec!["oncall@example.com"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[FIRING:1] TidemarkTestNotification none")
    );
    let plain = m.mime_part("text/plain");
    assert!(
        plain.contains("  summary = Test notification from Tidemark: this channel works.\n"),
        "{plain}"
    );
    assert!(
        m.mime_part("text/html")
            .contains("<td style=\"padding:2px 8px\">TidemarkTestNotification</td>")
    );

    // An unknown receiver is a 400 naming it; nothing is sent.
    let r = post(
        srv.addr(),
        "/api/v1/notifications/test",
        &headers,
        br#"{"receiver":"nobody"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nobody"));
    assert_eq!(slack.requests().len(), 1);
    assert_eq!(mail.messages().len(), 1);
}

fn tidemark(args: &[&str], env_token: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.args(args).env_remove("TIDEMARK_ADMIN_TOKEN");
    if let Some(t) = env_token {
        cmd.env("TIDEMARK_ADMIN_TOKEN", t);
    }
    let out = cmd.output().expect("run tidemark");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_prints_each_channel_and_fails_when_one_fails() {
    // Slack accepts the first test and rejects the second.
    let slack = HttpReceiver::start(&[(200, "ok"), (400, "invalid_payload")]);
    let mail = smtp_server();
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&slack, &mail, dir.path());
    let url = format!("http://{}", srv.addr());
    let base = [
        "notify",
        "test",
        "--url",
        url.as_str(),
        "--receiver",
        "team",
    ];

    let (ok, stdout, stderr) = tidemark(&base, Some(TOKEN));
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stdout,
        "test notification to receiver \"team\":\n  sent    slack\n  sent    email\n"
    );

    let (ok, stdout, stderr) = tidemark(&[&base[..], &["--token", TOKEN]].concat(), None);
    assert!(!ok, "a failed channel fails the command");
    assert!(
        stdout.contains("  sent    email\n")
            && stdout.contains("  FAILED  slack (failed): slack webhook answered HTTP 400")
            && stdout.contains("invalid_payload"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of 2 channels of receiver \"team\" failed"),
        "{stderr}"
    );
    assert_eq!(slack.requests().len(), 2);
    assert_eq!(mail.messages().len(), 2);

    // --json prints the server's answer as one line.
    let (ok, stdout, _) = tidemark(&[&base[..], &["--json"]].concat(), Some(TOKEN));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(v["data"][0]["outcome"], "sent");

    // Without the admin token the server refuses; nothing is sent.
    let (ok, _, stderr) = tidemark(&base, None);
    assert!(!ok);
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    let unknown = [
        "notify",
        "test",
        "--url",
        url.as_str(),
        "--receiver",
        "nobody",
    ];
    let (ok, _, stderr) = tidemark(&unknown, Some(TOKEN));
    assert!(!ok);
    assert!(stderr.contains("nobody"), "{stderr}");
    assert_eq!(slack.requests().len(), 3);
    assert_eq!(mail.messages().len(), 3);
}

#[test]
fn cli_sends_directly_from_a_config_file() {
    let slack = HttpReceiver::start(&[]);
    let mail = smtp_server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tidemark.toml");
    std::fs::write(&file, config_toml(&slack, &mail, dir.path())).unwrap();
    let file = file.to_str().unwrap();

    let (ok, stdout, stderr) = tidemark(
        &[
            "notify",
            "test",
            "--config",
            file,
            "--receiver",
            "team",
            "--json",
        ],
        None,
    );
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v,
        json!({"status": "success", "data": [
            {"channel": "slack", "outcome": "sent", "error": null},
            {"channel": "email", "outcome": "sent", "error": null},
        ]})
    );
    let got = slack.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json()["attachments"][0]["title"],
        "[FIRING:1] TidemarkTestNotification none"
    );
    let mails = mail.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("[FIRING:1] TidemarkTestNotification none")
    );

    let (ok, _, stderr) = tidemark(
        &["notify", "test", "--config", file, "--receiver", "nobody"],
        None,
    );
    assert!(!ok);
    assert!(stderr.contains("nobody"), "{stderr}");
    // A broken file is reported with its path; nothing is sent.
    std::fs::write(dir.path().join("bad.toml"), "[notify]\nreceivers = 3\n").unwrap();
    let bad = dir.path().join("bad.toml");
    let (ok, _, stderr) = tidemark(
        &[
            "notify",
            "test",
            "--config",
            bad.to_str().unwrap(),
            "--receiver",
            "team",
        ],
        None,
    );
    assert!(!ok);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert_eq!(slack.requests().len(), 1);
    assert_eq!(mail.messages().len(), 1);
}
