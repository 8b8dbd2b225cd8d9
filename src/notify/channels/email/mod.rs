//! The email channel: one SMTP message per notification through `lettre`
//! (rustls over ring), to a smarthost in plain text, STARTTLS or implicit
//! TLS, with optional AUTH (PLAIN/LOGIN; the password inline, from a file
//! or from an environment variable). The message is `multipart/alternative`
//! with the plain-text and HTML bodies of [`body`].
//!
//! Invariants:
//! - Everything that can be wrong in the configuration (addresses, host,
//!   port, templates, password source, CA file) is found by
//!   [`EmailChannelConfig::check`] or [`EmailChannel::new`], with the
//!   option named; `send` fails only on delivery.
//! - The SMTP transport is created and dropped inside `send`, so inside the
//!   tokio runtime that polls it; no connection outlives one attempt.
//! - SMTP 4xx, timeouts and connection errors are retryable; 5xx answers,
//!   TLS failures (untrusted certificate, wrong name, STARTTLS not
//!   offered) and client-side errors are permanent.

pub mod body;

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::text::{GroupTemplate, error_chain};
use crate::config::duration::serde_duration;
use crate::notify::channel::{Channel, ChannelError, Notification, SendFuture};

/// How the connection to the smarthost is encrypted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain text throughout (only for a trusted local relay).
    None,
    /// Plain text, then STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

/// `type = "email"` in `[[notify.receivers.channels]]`. `Debug` hides the
/// password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannelConfig {
    /// The SMTP server, `host:port`.
    pub smarthost: String,
    /// Sender address, `alerts@example.com` or `Tidemark <alerts@example.com>`.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// `none` | `starttls` | `tls`.
    #[serde(default)]
    pub tls: EmailTls,
    /// PEM file with extra root certificates to trust (a private CA);
    /// the public web roots are always trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// AUTH user name; no AUTH when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// AUTH password, inline ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// ... or read from this file (surrounding whitespace trimmed) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// ... or from this environment variable; read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Name sent in EHLO; default: this machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<String>,
    /// Subject template (see `channels::text::GroupTemplate`); default:
    /// Alertmanager's `[FIRING:2] HighErrorRate (checkout critical)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_template: Option<String>,
    /// Timeout of each SMTP command (connect, each reply).
    #[serde(with = "serde_duration", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for EmailChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannelConfig")
            .field("smarthost", &self.smarthost)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("hello", &self.hello)
            .field("subject_template", &self.subject_template)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl EmailChannelConfig {
    /// A configuration with every optional setting at its default.
    pub fn new(smarthost: impl Into<String>, from: impl Into<String>, to: Vec<String>) -> Self {
        Self {
            smarthost: smarthost.into(),
            from: from.into(),
            to,
            tls: EmailTls::default(),
            ca_file: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            hello: None,
            subject_template: None,
            timeout: default_timeout(),
        }
    }

    /// Checks everything that needs no file or environment; the message
    /// names the option.
    pub fn check(&self) -> Result<(), String> {
        split_host_port(&self.smarthost)?;
        parse_mailbox("from", &self.from)?;
        if self.to.is_empty() {
            return Err("email channel: to must list at least one address".into());
        }
        for (i, t) in self.to.iter().enumerate() {
            parse_mailbox(&format!("to[{i}]"), t)?;
        }
        let sources = [
            self.password.is_some(),
            self.password_file.is_some(),
            self.password_env.is_some(),
        ];
        let n = sources.iter().filter(|s| **s).count();
        if n > 1 {
            return Err(
                "email channel: set only one of password, password_file, password_env".into(),
            );
        }
        match (&self.username, n) {
            (Some(_), 0) => {
                return Err(
                    "email channel: username needs password, password_file or password_env".into(),
                );
            }
            (None, 1) => return Err("email channel: a password needs a username".into()),
            _ => {}
        }
        if self.ca_file.is_some() && self.tls == EmailTls::None {
            return Err("email channel: ca_file needs tls = \"starttls\" or \"tls\"".into());
        }
        if let Some(h) = &self.hello
            && (h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!("email channel: hello {h:?} must be a host name"));
        }
        if let Some(t) = &self.subject_template {
            GroupTemplate::parse(t).map_err(|e| format!("email channel: subject_template: {e}"))?;
        }
        if self.timeout.is_zero() {
            return Err("email channel: timeout must be positive".into());
        }
        Ok(())
    }

    /// The password from whichever source is set.
    fn resolve_password(&self) -> Result<Option<String>, String> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "email channel: reading password_file {}: {e}",
                    path.display()
                )
            })?;
            return Ok(Some(text.trim().to_string()));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(Some)
                .map_err(|e| format!("email channel: password_env {var}: {e}"));
        }
        Ok(None)
    }
}

fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("email channel: smarthost {s:?} must be host:port");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn parse_mailbox(what: &str, s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("email channel: {what} {s:?} is not an email address ({e})"))
}

/// An SMTP smarthost and the message settings.
pub struct EmailChannel {
    host: String,
    port: u16,
    tls: Option<(EmailTls, TlsParameters)>,
    credentials: Option<Credentials>,
    hello: Option<ClientId>,
    timeout: Duration,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Option<GroupTemplate>,
}

impl EmailChannel {
    /// Builds the channel: checks the configuration, reads the password
    /// and CA file. Errors name the option or file.
    pub fn new(cfg: &EmailChannelConfig) -> Result<Self, String> {
        cfg.check()?;
        let (host, port) = split_host_port(&cfg.smarthost)?;
        let tls = match cfg.tls {
            EmailTls::None => None,
            mode => {
                let mut b = TlsParameters::builder(host.clone());
                if let Some(path) = &cfg.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        format!("email channel: reading ca_file {}: {e}", path.display())
                    })?;
                    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                        return Err(format!(
                            "email channel: ca_file {} holds no PEM certificate",
                            path.display()
                        ));
                    }
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        format!(
                            "email channel: ca_file {}: {}",
                            path.display(),
                            error_chain(&e)
                        )
                    })?;
                    b = b.add_root_certificate(cert);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| format!("email channel: TLS setup: {}", error_chain(&e)))?;
                Some((mode, params))
            }
        };
        let credentials = match (&cfg.username, cfg.resolve_password()?) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p)),
            _ => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            hello: cfg.hello.clone().map(ClientId::Domain),
            timeout: cfg.timeout,
            from: parse_mailbox("from", &cfg.from)?,
            to: cfg
                .to
                .iter()
                .enumerate()
                .map(|(i, t)| parse_mailbox(&format!("to[{i}]"), t))
                .collect::<Result<_, _>>()?,
            subject: cfg
                .subject_template
                .as_deref()
                .map(GroupTemplate::parse)
                .transpose()
                .map_err(|e| format!("email channel: subject_template: {e}"))?,
        })
    }

    /// The message for `n`: From, To, Subject, plain-text and HTML parts.
    pub fn message(&self, n: &Notification) -> Result<Message, ChannelError> {
        let subject = body::subject(n, self.subject.as_ref());
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject.clone());
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(
            body::plain_text(n, &subject),
            body::html(n, &subject),
        ))
        .map_err(|e| ChannelError::Permanent(format!("email: building the message: {e}")))
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .timeout(Some(self.timeout));
        b = match &self.tls {
            None => b.tls(Tls::None),
            Some((EmailTls::Tls, p)) => b.tls(Tls::Wrapper(p.clone())),
            Some((_, p)) => b.tls(Tls::Required(p.clone())),
        };
        if let Some(c) = &self.credentials {
            b = b.credentials(c.clone());
        }
        if let Some(h) = &self.hello {
            b = b.hello_name(h.clone());
        }
        b.build()
    }
}

/// Whether a rustls certificate or TLS-protocol error is somewhere in the
/// chain (lettre reports a failed handshake as a connection error; the
/// rustls error is inside an `io::Error`).
fn tls_rejected(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(r) = candidate.downcast_ref::<rustls::Error>() {
                return matches!(
                    r,
                    rustls::Error::InvalidCertificate(_)
                        | rustls::Error::NoCertificatesPresented
                        | rustls::Error::UnsupportedNameType
                        | rustls::Error::PeerIncompatible(_)
                );
            }
        }
        cur = err.source();
    }
    false
}

/// Sorts a lettre error into retryable or permanent (see the module doc).
fn classify(e: &lettre::transport::smtp::Error) -> ChannelError {
    let msg = format!("email: {}", error_chain(e));
    if e.is_permanent() || e.is_tls() || e.is_client() || tls_rejected(e) {
        ChannelError::Permanent(msg)
    } else {
        ChannelError::Retryable(msg)
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let message = self.message(n)?;
            let transport = self.transport();
            let result = transport.send(message).await;
            drop(transport);
            result.map(|_| ()).map_err(|e| classify(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailChannelConfig {
        EmailChannelConfig::new(
            "smtp.example.com:587",
            "Tidemark <alerts@example.com>",
            vec!["ops@example.com".into()],
        )
    }

    #[test]
    fn config_errors_name_the_option() {
        assert!(cfg().check().is_ok());
        let check = |f: &dyn Fn(&mut EmailChannelConfig)| {
            let mut c = cfg();
            f(&mut c);
            c.check().unwrap_err()
        };
        assert!(check(&|c| c.smarthost = "smtp.example.com".into()).contains("smarthost"));
        assert!(check(&|c| c.smarthost = "h:99999".into()).contains("host:port"));
        assert!(check(&|c| c.from = "not an address".into()).contains("from"));
        assert!(check(&|c| c.to = vec![]).contains("at least one"));
        assert!(check(&|c| c.to = vec!["a@b".into(), "x".into()]).contains("to[1]"));
        assert!(check(&|c| c.username = Some("u".into())).contains("needs password"));
        assert!(check(&|c| c.password = Some("p".into())).contains("needs a username"));
        assert!(
            check(&|c| {
                c.username = Some("u".into());
                c.password = Some("p".into());
                c.password_env = Some("P".into());
            })
            .contains("only one of")
        );
        assert!(check(&|c| c.hello = Some("a b".into())).contains("hello"));
        assert!(
            check(&|c| {
                c.tls = EmailTls::None;
                c.ca_file = Some("ca.pem".into());
            })
            .contains("ca_file")
        );
        assert!(
            check(&|c| c.subject_template = Some("{{ .X }}".into())).contains("subject_template")
        );
    }

    #[test]
    fn config_file_errors_name_receiver_channel_and_option() {
        let toml = r#"
[[notify.receivers]]
name = "ops"
channels = [
  { type = "slack", url = "https://hooks.example/x" },
  { type = "email", smarthost = "smtp.example.com", from = "a@b", to = ["c@d"] },
]
[notify.route]
receiver = "ops"
"#;
        let e = crate::config::Config::from_toml(toml, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("notify.receivers[0] (\"ops\").channels[1]") && e.contains("smarthost"),
            "{e}"
        );
        let e = crate::config::Config::from_toml(
            &toml.replace(
                "smtp.example.com",
                "smtp.example.com:25\", tls = \"sometimes",
            ),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sometimes"), "{e}");
        let ok = toml.replace("smtp.example.com", "smtp.example.com:25");
        let cfg = crate::config::Config::from_toml(&ok, "t.toml").unwrap();
        let crate::notify::config::ChannelConfig::Email(email) =
            &cfg.notify.receivers[0].channels[1]
        else {
            panic!("email channel expected")
        };
        assert_eq!(email.tls, EmailTls::Starttls, "STARTTLS is the default");
        assert_eq!(email.timeout, Duration::from_secs(10));
    }

    #[test]
    fn debug_hides_the_password() {
        let mut c = cfg();
        c.username = Some("u".into());
        c.password = Some("hunter2".into());
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && d.contains("<secret>"), "{d}");
    }

    #[test]
    fn password_comes_from_file_and_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut c = cfg();
        c.username = Some("u".into());
        c.password_file = Some(path);
        assert_eq!(c.resolve_password().unwrap().as_deref(), Some("s3cret"));
        c.password_file = Some(dir.path().join("missing"));
        let e = EmailChannel::new(&c).err().unwrap();
        assert!(e.contains("password_file") && e.contains("missing"), "{e}");
        c.password_file = None;
        c.password_env = Some("TIDEMARK_TEST_SURELY_UNSET_VAR".into());
        let e = EmailChannel::new(&c).err().unwrap();
        assert!(e.contains("TIDEMARK_TEST_SURELY_UNSET_VAR"), "{e}");
    }

    #[test]
    fn bad_ca_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let mut c = cfg();
        c.ca_file = Some(path);
        let e = EmailChannel::new(&c).err().unwrap();
        assert!(e.contains("ca_file"), "{e}");
    }
}
