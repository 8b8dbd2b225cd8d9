//! The console channel: one human-readable block per notification on
//! stderr (title, then one line per alert with its labels and summary).

use std::io::Write;

use crate::notify::channel::{Channel, ChannelError, Notification, NotifyStatus, SendFuture};

/// Writes to stderr.
#[derive(Debug, Default)]
pub struct ConsoleChannel;

/// The block the console channel prints for `n`.
pub fn render(n: &Notification) -> String {
    let mut s = format!("== {} -> {} ({})\n", n.title(), n.receiver, n.group_key);
    for a in &n.alerts {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let since = match a.status {
            NotifyStatus::Firing => format!("since {}", a.starts_at),
            NotifyStatus::Resolved => format!("resolved {}", a.ends_at),
        };
        s.push_str(&format!(
            "  [{}] {} ({since})\n",
            a.status.as_str(),
            labels.join(" ")
        ));
        if let Some(text) = a
            .annotations
            .get("summary")
            .or(a.annotations.get("description"))
        {
            s.push_str(&format!("      {text}\n"));
        }
    }
    s
}

impl Channel for ConsoleChannel {
    fn kind(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        let text = render(n);
        Box::pin(async move {
            std::io::stderr()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| ChannelError::Retryable(format!("writing to stderr: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::channel::PayloadAlert;

    #[test]
    fn one_block_with_title_labels_and_summary() {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "DiskFull".to_string()),
            ("mount".to_string(), "/data".to_string()),
        ]);
        let n = Notification::new(
            "ops",
            "{}:{alertname=\"DiskFull\"}",
            BTreeMap::from([("alertname".to_string(), "DiskFull".to_string())]),
            "http://x",
            vec![PayloadAlert {
                status: NotifyStatus::Firing,
                labels,
                annotations: BTreeMap::from([("summary".to_string(), "95% used".to_string())]),
                starts_at: "2026-11-27T07:00:00.000Z".into(),
                ends_at: crate::notify::time::ZERO_TIME.into(),
                generator_url: String::new(),
                fingerprint: "0".into(),
            }],
        );
        assert_eq!(
            render(&n),
            "== [FIRING:1] DiskFull -> ops ({}:{alertname=\"DiskFull\"})\n  \
             [firing] alertname=DiskFull mount=/data (since 2026-11-27T07:00:00.000Z)\n      \
             95% used\n"
        );
    }
}
