//! The Slack and email channels against real local receivers: an HTTP
//! server on 127.0.0.1:0 that captures what Slack would get (and answers
//! with scripted statuses), and the SMTP server of `common/smtp.rs` (plain,
//! STARTTLS and implicit TLS with a CA generated here by rcgen).
//! No mock of the channel code: the real reqwest and lettre clients talk to
//! the receivers over sockets.

mod common;
#[path = "support/http_receiver.rs"]
mod http_receiver;
#[path = "common/smtp.rs"]
mod smtp;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use http_receiver::HttpReceiver;
use serde_json::json;
use smtp::{SmtpConfig, SmtpServer, SmtpTls};
use tidemark::notify::channel::{Channel, ChannelError, Notification, NotifyStatus, PayloadAlert};
use tidemark::notify::channels::email::{EmailChannel, EmailChannelConfig, EmailTls};
use tidemark::notify::channels::slack::{SlackChannel, SlackChannelConfig};

// ---------------------------------------------------------------------------
// Notifications.

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn alert(status: NotifyStatus, instance: &str, severity: &str) -> PayloadAlert {
    PayloadAlert {
        status,
        labels: map(&[
            ("alertname", "HighErrorRate"),
            ("instance", instance),
            ("service", "checkout"),
            ("severity", severity),
        ]),
        annotations: map(&[
            ("summary", "Error rate above 15%"),
            ("description", "checkout fails 20% of requests"),
        ]),
        starts_at: "2026-11-27T07:00:00.000Z".into(),
        ends_at: match status {
            NotifyStatus::Firing => "0001-01-01T00:00:00Z".into(),
            NotifyStatus::Resolved => "2026-11-27T07:30:00.000Z".into(),
        },
        generator_url: "http://127.0.0.1:9201/graph?g0.expr=error_rate".into(),
        fingerprint: "0123456789abcdef".into(),
    }
}

fn notification(alerts: Vec<PayloadAlert>) -> Notification {
    Notification::new(
        "ops",
        "{}:{alertname=\"HighErrorRate\"}",
        map(&[("alertname", "HighErrorRate")]),
        "http://127.0.0.1:9201",
        alerts,
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn send(ch: &dyn Channel, n: &Notification) -> Result<(), ChannelError> {
    rt().block_on(ch.send(n))
}

// ---------------------------------------------------------------------------
// Slack.

fn alert_text(instance: &str, severity: &str, status: &str) -> String {
    let mut s = format!(
        "*[{status}] Error rate above 15%* - `{severity}`\n\
         *Description:* checkout fails 20% of requests\n\
         *Labels:* `alertname=HighErrorRate` `instance={instance}` `service=checkout` `severity={severity}`\n\
         *Started:* 2026-11-27T07:00:00.000Z"
    );
    if status == "RESOLVED" {
        s.push_str("\n*Ended:* 2026-11-27T07:30:00.000Z");
    }
    s
}

#[test]
fn slack_posts_the_exact_incoming_webhook_json() {
    let rx = HttpReceiver::start(&[]);
    let cfg = SlackChannelConfig {
        channel: Some("#ops".into()),
        username: Some("tidemark".into()),
        icon_emoji: Some(":rotating_light:".into()),
        ..SlackChannelConfig::with_url(rx.url())
    };
    let ch = SlackChannel::new(&cfg).unwrap();
    assert_eq!(ch.kind(), "slack");

    let firing = notification(vec![
        alert(NotifyStatus::Firing, "a:1", "critical"),
        alert(NotifyStatus::Firing, "b:1", "critical"),
    ]);
    send(&ch, &firing).unwrap();
    let warning = notification(vec![alert(NotifyStatus::Firing, "a:1", "warning")]);
    send(&ch, &warning).unwrap();
    let info = notification(vec![alert(NotifyStatus::Firing, "a:1", "info")]);
    send(&ch, &info).unwrap();
    let resolved = notification(vec![alert(NotifyStatus::Resolved, "a:1", "critical")]);
    send(&ch, &resolved).unwrap();

    let got = rx.requests();
    assert_eq!(got.len(), 4);
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/services/T000/B000/XXXX");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let envelope = |color: &str, title: &str, text: String, fallback: &str| {
        json!({
            "channel": "#ops",
            "username": "tidemark",
            "icon_emoji": ":rotating_light:",
            "attachments": [{
                "color": color,
                "title": title,
                "title_link": "http://127.0.0.1:9201",
                "text": text,
                "fallback": fallback,
                "mrkdwn_in": ["text"],
            }]
        })
    };
    assert_eq!(
        got[0].json(),
        envelope(
            "#d63232",
            "[FIRING:2] HighErrorRate (checkout critical)",
            format!(
                "{}\n\n{}",
                alert_text("a:1", "critical", "FIRING"),
                alert_text("b:1", "critical", "FIRING")
            ),
            "[FIRING:2] HighErrorRate (checkout critical): Error rate above 15%; Error rate above 15%",
        )
    );
    assert_eq!(
        got[1].json(),
        envelope(
            "#e8912d",
            "[FIRING:1] HighErrorRate (a:1 checkout warning)",
            alert_text("a:1", "warning", "FIRING"),
            "[FIRING:1] HighErrorRate (a:1 checkout warning): Error rate above 15%",
        )
    );
    assert_eq!(got[2].json()["attachments"][0]["color"], "#a0a0a0");
    assert_eq!(
        got[3].json(),
        envelope(
            "#2eb886",
            "[RESOLVED] HighErrorRate (a:1 checkout critical)",
            alert_text("a:1", "critical", "RESOLVED"),
            "[RESOLVED] HighErrorRate (a:1 checkout critical): Error rate above 15%",
        )
    );
}

#[test]
fn slack_templates_and_defaults() {
    let rx = HttpReceiver::start(&[]);
    let cfg = SlackChannelConfig {
        title_template: Some("{{ $value }} firing on {{ $labels.service }}".into()),
        text_template: Some("{{ $labels.instance }}: {{ $labels.summary }}".into()),
        ..SlackChannelConfig::with_url(rx.url())
    };
    let ch = SlackChannel::new(&cfg).unwrap();
    let n = notification(vec![
        alert(NotifyStatus::Firing, "a:1", "critical"),
        alert(NotifyStatus::Resolved, "b:1", "critical"),
    ]);
    send(&ch, &n).unwrap();
    let v = rx.requests()[0].json();
    // No overrides configured: the webhook's own channel/name/icon apply.
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    let att = &v["attachments"][0];
    assert_eq!(att["title"], "1 firing on checkout");
    assert_eq!(
        att["text"],
        "a:1: Error rate above 15%\nb:1: Error rate above 15%"
    );
    assert_eq!(att["color"], "#d63232");
}

#[test]
fn slack_errors_say_status_body_and_whether_to_retry() {
    let rx = HttpReceiver::start(&[
        (500, "internal_error"),
        (429, "rate_limited"),
        (400, "invalid_payload"),
        (404, "no_service"),
    ]);
    let ch = SlackChannel::new(&SlackChannelConfig::with_url(rx.url())).unwrap();
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);
    let e = send(&ch, &n).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        e.message().contains("HTTP 500") && e.message().contains("internal_error"),
        "{e}"
    );
    let e = send(&ch, &n).unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        e.message().contains("HTTP 429") && e.message().contains("rate_limited"),
        "{e}"
    );
    let e = send(&ch, &n).unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(
        e.message().contains("HTTP 400") && e.message().contains("invalid_payload"),
        "{e}"
    );
    let e = send(&ch, &n).unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(
        e.message().contains("HTTP 404") && e.message().contains("no_service"),
        "{e}"
    );
    assert!(
        !e.message().contains("XXXX"),
        "the webhook URL is a secret: {e}"
    );
    assert_eq!(rx.requests().len(), 4);
    send(&ch, &n).unwrap();
}

#[test]
fn slack_unreachable_is_retryable_and_hides_the_url() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/services/SECRET");
    let ch = SlackChannel::new(&SlackChannelConfig::with_url(url)).unwrap();
    let e = send(
        &ch,
        &notification(vec![alert(NotifyStatus::Firing, "a", "critical")]),
    )
    .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(!e.message().contains("SECRET"), "{e}");
}

// ---------------------------------------------------------------------------
// Email.

fn email_cfg(addr: SocketAddr) -> EmailChannelConfig {
    EmailChannelConfig {
        tls: EmailTls::None,
        hello: Some("tidemark.test".into()),
        ..EmailChannelConfig::new(
            addr.to_string(),
            "Tidemark <alerts@example.com>",
            vec!["ops@example.com".into(), "Pager <pager@example.com>".into()],
        )
    }
}

#[test]
fn email_delivers_both_parts_with_auth() {
    let server = SmtpServer::start(SmtpConfig {
        credentials: Some(("tidemark".into(), "s3cret pass".into())),
        tls: SmtpTls::None,
        ..SmtpConfig::default()
    });
    let cfg = EmailChannelConfig {
        username: Some("tidemark".into()),
        password: Some("s3cret pass".into()),
        ..email_cfg(server.addr)
    };
    let ch = EmailChannel::new(&cfg).unwrap();
    assert_eq!(ch.kind(), "email");
    let mut n = notification(vec![
        alert(NotifyStatus::Firing, "a:1", "critical"),
        alert(NotifyStatus::Firing, "b:1", "critical"),
    ]);
    n.alerts[1]
        .annotations
        .insert("runbook".into(), "<check the DB pool> & restart".into());
    send(&ch, &n).unwrap();

    let got = server.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.hello, "tidemark.test");
    assert!(!m.tls);
    let (mech, user, pass) = m.auth.clone().expect("authenticated");
    assert!(mech == "PLAIN" || mech == "LOGIN", "{mech}");
    assert_eq!((user.as_str(), pass.as_str()), ("tidemark", "s3cret pass"));
    assert_eq!(m.from, "alerts@example.com");
    assert_eq!(m.to, vec!["ops@example.com", "pager@example.com"]);
    assert_eq!(
        m.header("From").as_deref(),
        Some("Tidemark <alerts@example.com>")
    );
    assert_eq!(
        m.header("To").as_deref(),
        Some("ops@example.com, Pager <pager@example.com>")
    );
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[FIRING:2] HighErrorRate (checkout critical)")
    );
    assert!(m.header("Date").is_some());

    let text = m.mime_part("text/plain");
    assert!(
        text.starts_with(
            "[FIRING:2] HighErrorRate (checkout critical)\n\n2 alerts for alertname=HighErrorRate\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n[2] Firing\n"), "{text}");
    assert!(!text.contains("Resolved"), "{text}");
    assert!(
        text.contains("  instance = a:1\n") && text.contains("  instance = b:1\n"),
        "{text}"
    );
    assert!(
        text.contains("  summary = Error rate above 15%\n"),
        "{text}"
    );
    assert!(
        text.contains("  runbook = <check the DB pool> & restart\n"),
        "{text}"
    );
    assert_eq!(
        text.matches("Started: 2026-11-27T07:00:00.000Z\n").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("Source: http://127.0.0.1:9201/graph?g0.expr=error_rate\n"),
        "{text}"
    );

    let html = m.mime_part("text/html");
    assert!(
        html.contains(
            "<h2 style=\"color:#d63232\">[FIRING:2] HighErrorRate (checkout critical)</h2>"
        ),
        "{html}"
    );
    assert!(
        html.contains("&lt;check the DB pool&gt; &amp; restart"),
        "{html}"
    );
    assert!(!html.contains("<check the DB pool>"), "{html}");
    assert!(
        html.contains("<td style=\"padding:2px 8px\">b:1</td>"),
        "{html}"
    );
    assert_eq!(
        html.matches("2026-11-27T07:00:00.000Z").count(),
        2,
        "{html}"
    );
}

#[test]
fn email_wrong_password_is_permanent_and_names_the_reply() {
    let server = SmtpServer::start(SmtpConfig {
        credentials: Some(("tidemark".into(), "right".into())),
        tls: SmtpTls::None,
        ..SmtpConfig::default()
    });
    let cfg = EmailChannelConfig {
        username: Some("tidemark".into()),
        password: Some("wrong".into()),
        ..email_cfg(server.addr)
    };
    let ch = EmailChannel::new(&cfg).unwrap();
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);
    let e = send(&ch, &n).unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.message().contains("535"), "{e}");
    assert_eq!(
        server.auth_failures(),
        vec![("tidemark".to_string(), "wrong".to_string())]
    );
    assert!(server.messages().is_empty());
}

#[test]
fn email_password_from_file_and_resolved_subject() {
    let server = SmtpServer::start(SmtpConfig {
        credentials: Some(("u".into(), "from-file".into())),
        tls: SmtpTls::None,
        ..SmtpConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, "from-file\n").unwrap();
    let cfg = EmailChannelConfig {
        username: Some("u".into()),
        password_file: Some(pw),
        subject_template: Some("{{ $labels.__status__ }}: {{ $labels.service }}".into()),
        ..email_cfg(server.addr)
    };
    let ch = EmailChannel::new(&cfg).unwrap();
    let n = notification(vec![alert(NotifyStatus::Resolved, "a:1", "critical")]);
    send(&ch, &n).unwrap();
    let m = &server.messages()[0];
    assert_eq!(m.auth.as_ref().unwrap().2, "from-file");
    assert_eq!(m.header("Subject").as_deref(), Some("resolved: checkout"));
    let text = m.mime_part("text/plain");
    assert!(text.contains("\n[1] Resolved\n"), "{text}");
    assert!(text.contains("Ended: 2026-11-27T07:30:00.000Z\n"), "{text}");
    let html = m.mime_part("text/html");
    assert!(
        html.contains("<h2 style=\"color:#2eb886\">resolved: checkout</h2>"),
        "{html}"
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it; the CA's PEM
/// is written to `dir/ca.pem`.
fn tls_setup(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, std::path::PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tidemark test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
    (Arc::new(cfg), ca_path)
}

#[test]
fn email_starttls_and_implicit_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (server_tls, ca_path) = tls_setup(dir.path());
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);

    for (server_mode, client_mode) in [
        (SmtpTls::StartTls(server_tls.clone()), EmailTls::Starttls),
        (SmtpTls::Implicit(server_tls.clone()), EmailTls::Tls),
    ] {
        let server = SmtpServer::start(SmtpConfig {
            credentials: Some(("u".into(), "p".into())),
            tls: server_mode,
            ..SmtpConfig::default()
        });
        let cfg = EmailChannelConfig {
            tls: client_mode,
            ca_file: Some(ca_path.clone()),
            username: Some("u".into()),
            password: Some("p".into()),
            ..email_cfg(server.addr)
        };
        send(&EmailChannel::new(&cfg).unwrap(), &n).unwrap();
        let got = server.messages();
        assert_eq!(got.len(), 1, "{client_mode:?}");
        assert!(got[0].tls, "{client_mode:?}: delivered over TLS");
        assert_eq!(got[0].auth.as_ref().unwrap().1, "u");
        assert_eq!(
            got[0].header("Subject").as_deref(),
            Some("[FIRING:1] HighErrorRate (a:1 checkout critical)")
        );

        // Without the CA the certificate is not trusted: permanent, nothing sent.
        let untrusted = EmailChannelConfig {
            ca_file: None,
            ..cfg
        };
        let e = send(&EmailChannel::new(&untrusted).unwrap(), &n).unwrap_err();
        assert!(!e.is_retryable(), "{client_mode:?}: {e:?}");
        assert_eq!(server.messages().len(), 1, "{client_mode:?}");
    }
}

#[test]
fn email_starttls_required_but_not_offered_fails_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ca_path) = tls_setup(dir.path());
    let server = SmtpServer::start(SmtpConfig::default());
    let cfg = EmailChannelConfig {
        tls: EmailTls::Starttls,
        ca_file: Some(ca_path),
        ..email_cfg(server.addr)
    };
    let e = send(
        &EmailChannel::new(&cfg).unwrap(),
        &notification(vec![alert(NotifyStatus::Firing, "a", "critical")]),
    )
    .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(server.messages().is_empty(), "nothing sent in plain text");
}

// ---------------------------------------------------------------------------
// Retries: the notifier's retry path (`dispatch::send_with_retry`) over the
// real Slack channel, with the backoff waits recorded instead of slept.

fn retry_policy() -> tidemark::notify::config::RetryConfig {
    tidemark::notify::config::RetryConfig {
        initial_backoff: std::time::Duration::from_secs(1),
        max_backoff: std::time::Duration::from_secs(60),
        max_attempts: 5,
    }
}

fn send_retrying(ch: &dyn Channel, n: &Notification) -> (u32, Result<(), ChannelError>, Vec<u64>) {
    let waits = std::sync::Mutex::new(Vec::new());
    let (attempts, result) = rt().block_on(tidemark::notify::dispatch::send_with_retry(
        ch,
        n,
        &retry_policy(),
        |d| {
            waits.lock().unwrap().push(d.as_secs());
            std::future::ready(())
        },
    ));
    (attempts, result, waits.into_inner().unwrap())
}

#[test]
fn slack_5xx_is_retried_until_delivered_4xx_is_not() {
    let rx = HttpReceiver::start(&[(500, "oops"), (503, "busy")]);
    let ch = SlackChannel::new(&SlackChannelConfig::with_url(rx.url())).unwrap();
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);
    let (attempts, result, waits) = send_retrying(&ch, &n);
    result.unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(waits, vec![1, 2], "exponential backoff between attempts");
    let got = rx.requests();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].body, got[2].body, "the same message each attempt");

    let rx = HttpReceiver::start(&[(400, "invalid_payload")]);
    let ch = SlackChannel::new(&SlackChannelConfig::with_url(rx.url())).unwrap();
    let (attempts, result, waits) = send_retrying(&ch, &n);
    let e = result.unwrap_err();
    assert_eq!((attempts, waits.len()), (1, 0), "a 400 is not retried");
    assert!(
        e.message().contains("HTTP 400") && e.message().contains("invalid_payload"),
        "{e}"
    );
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn email_4xx_is_retried_until_delivered_5xx_is_not() {
    let server = SmtpServer::start(SmtpConfig {
        transient_failures: 2,
        reject_recipient: Some("gone@example.com".into()),
        ..SmtpConfig::default()
    });
    let ch = EmailChannel::new(&email_cfg(server.addr)).unwrap();
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);
    let (attempts, result, waits) = send_retrying(&ch, &n);
    result.unwrap();
    assert_eq!((attempts, waits), (3, vec![1, 2]));
    assert_eq!(server.messages().len(), 1, "delivered once");

    let cfg = EmailChannelConfig {
        to: vec!["gone@example.com".into()],
        ..email_cfg(server.addr)
    };
    let ch = EmailChannel::new(&cfg).unwrap();
    let (attempts, result, waits) = send_retrying(&ch, &n);
    let e = result.unwrap_err();
    assert_eq!((attempts, waits.len()), (1, 0), "a 550 is not retried: {e}");
    assert!(
        e.message().contains("550") && e.message().contains("no such user"),
        "{e}"
    );
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn email_connection_errors_are_retried_up_to_max_attempts() {
    // Nothing listens: every attempt fails with a retryable connection
    // error, so the dispatcher uses all attempts with doubling backoff.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ch = EmailChannel::new(&email_cfg(format!("127.0.0.1:{port}").parse().unwrap())).unwrap();
    let n = notification(vec![alert(NotifyStatus::Firing, "a:1", "critical")]);
    let (attempts, result, waits) = send_retrying(&ch, &n);
    assert!(result.unwrap_err().is_retryable());
    assert_eq!(attempts, 5);
    assert_eq!(waits, vec![1, 2, 4, 8]);
}
