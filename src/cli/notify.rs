//! `tidemark notify test --receiver NAME`: prove a receiver's channels work
//! before a real incident does. By default it asks a running server
//! (`--url`, `POST /api/v1/notifications/test`, admin token from `--token`
//! or `TIDEMARK_ADMIN_TOKEN`), which sends through its configured channels
//! with its secrets. With `--config FILE` it builds the receiver's channels
//! from that configuration and sends from this process instead (the same
//! test notification, through `Notifier::test_receiver`; no server needed).
//! It prints one line per channel (`sent` or `FAILED` with the error), or
//! the endpoint's JSON with `--json`.
//!
//! Invariant: the exit status is non-zero when any channel failed, when
//! the receiver is unknown, or when the server cannot be asked, so the
//! command can gate a deploy script.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The environment variable `--token` defaults to.
pub const TOKEN_ENV: &str = "TIDEMARK_ADMIN_TOKEN";

#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send a test notification through every channel of a receiver.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The receiver (a `[[notify.receivers]]` name).
    #[arg(long)]
    pub receiver: String,
    /// The running server to ask (unless --config), e.g. http://127.0.0.1:9201.
    #[arg(long, default_value = "http://127.0.0.1:9201")]
    pub url: String,
    /// Admin bearer token (default: the TIDEMARK_ADMIN_TOKEN environment variable).
    #[arg(long)]
    pub token: Option<String>,
    /// Send from this process with the channels of this configuration
    /// file instead of asking a server.
    #[arg(long, conflicts_with_all = ["url", "token"])]
    pub config: Option<PathBuf>,
    /// How long to wait for the channels' outcomes.
    #[arg(long, value_parser = crate::config::duration::parse_duration, default_value = "2m")]
    pub timeout: Duration,
    /// Print the endpoint's JSON answer (one line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One channel's result as the endpoint reports it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ChannelOutcome {
    pub channel: String,
    pub outcome: String,
    #[serde(default)]
    pub error: Option<String>,
}

pub fn run(args: &NotifyArgs) -> anyhow::Result<()> {
    match &args.command {
        NotifyCommand::Test(t) => test(t),
    }
}

fn test(args: &TestArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let body = match &args.config {
        Some(path) => rt.block_on(send_directly(path, &args.receiver, args.timeout))?,
        None => rt.block_on(ask_server(
            &args.url,
            &args.receiver,
            token.as_deref(),
            args.timeout,
        ))?,
    };
    let outcomes: Vec<ChannelOutcome> = serde_json::from_value(body["data"].clone())
        .with_context(|| format!("unexpected answer from the server: {body}"))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        super::print_json_line(&mut out, &body)?;
    } else {
        print_outcomes(&mut out, &args.receiver, &outcomes)?;
    }
    drop(out);
    let failed = outcomes.iter().filter(|o| o.outcome != "sent").count();
    if outcomes.is_empty() {
        bail!("receiver {:?} has no channels", args.receiver);
    }
    if failed > 0 {
        bail!(
            "{failed} of {} channels of receiver {:?} failed",
            outcomes.len(),
            args.receiver
        );
    }
    Ok(())
}

/// `sent    slack` / `FAILED  email: <error>` lines.
pub fn print_outcomes(
    out: &mut impl Write,
    receiver: &str,
    outcomes: &[ChannelOutcome],
) -> std::io::Result<()> {
    writeln!(out, "test notification to receiver {receiver:?}:")?;
    for o in outcomes {
        match (o.outcome.as_str(), &o.error) {
            ("sent", _) => writeln!(out, "  sent    {}", o.channel)?,
            (other, err) => writeln!(
                out,
                "  FAILED  {} ({other}): {}",
                o.channel,
                err.as_deref().unwrap_or("no error given")
            )?,
        }
    }
    Ok(())
}

/// Builds the notifier of the configuration at `path` (no data directory:
/// nothing is persisted) and sends the test notification through
/// `receiver`'s channels; answers like the endpoint.
async fn send_directly(
    path: &std::path::Path,
    receiver: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    use crate::notify::{Notifier, history::MemoryHistory};
    let cfg = crate::config::Config::load(path)?;
    let now = crate::notify::time::now_ms();
    let history = Arc::new(MemoryHistory::open(None, 100));
    let notifier = Notifier::new(
        &cfg.notify,
        None,
        &crate::health::Health::new(),
        history,
        now,
    )
    .with_context(|| format!("setting up the channels of {}", path.display()))?;
    let results = tokio::time::timeout(timeout, notifier.test_receiver(receiver, now))
        .await
        .context("channels did not answer within --timeout")?
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let data: Vec<ChannelOutcome> = results
        .into_iter()
        .map(|(channel, error)| ChannelOutcome {
            channel: channel.to_string(),
            outcome: if error.is_none() { "sent" } else { "failed" }.to_string(),
            error,
        })
        .collect();
    Ok(serde_json::json!({ "status": "success", "data": data }))
}

/// POSTs `{"receiver": name}` and returns the JSON answer when it is a
/// success; otherwise an error with the server's message.
async fn ask_server(
    url: &str,
    receiver: &str,
    token: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url {url:?} must start with http:// or https://");
    }
    let endpoint = format!("{base}/api/v1/notifications/test");
    let client = crate::http_client::client(timeout)
        .map_err(|e| anyhow::anyhow!("creating the HTTP client: {e}"))?;
    let mut req = client
        .post(&endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "receiver": receiver }).to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    let status = resp.status();
    let text = resp.text().await.context("reading the answer")?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "the server answered HTTP {status} with non-JSON: {}",
            text.trim()
        )
    })?;
    if !status.is_success() || json["status"] != "success" {
        bail!(
            "the server answered HTTP {status}: {}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or(text.trim())
        );
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_print_one_line_each_with_errors() {
        let mut out = Vec::new();
        print_outcomes(
            &mut out,
            "ops",
            &[
                ChannelOutcome {
                    channel: "slack".into(),
                    outcome: "sent".into(),
                    error: None,
                },
                ChannelOutcome {
                    channel: "email".into(),
                    outcome: "failed".into(),
                    error: Some("email: connection refused".into()),
                },
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "test notification to receiver \"ops\":\n  sent    slack\n  \
             FAILED  email (failed): email: connection refused\n"
        );
    }
}
