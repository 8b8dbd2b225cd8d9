//! What an email notification says: the subject (Alertmanager's
//! `[FIRING:2] HighErrorRate (checkout critical)` or a user template) and
//! the two bodies of the `multipart/alternative` message, plain text and
//! HTML, listing firing then resolved alerts with labels, annotations,
//! start (and end) times and source links.
//!
//! Invariants: pure functions of the notification; everything taken from
//! alerts is HTML-escaped in the HTML part; a subject never contains a
//! line break (header injection), whatever a template or label holds.

use std::fmt::Write as _;

use super::super::text::{GroupTemplate, default_title, sorted_pairs};
use crate::notify::channel::{Notification, NotifyStatus, PayloadAlert};

/// The subject: `template` expanded, or Alertmanager's default title;
/// control characters (CR, LF, ...) become spaces.
pub fn subject(n: &Notification, template: Option<&GroupTemplate>) -> String {
    let s = match template {
        Some(t) => t.expand(n),
        None => default_title(n),
    };
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn partition(n: &Notification) -> (Vec<&PayloadAlert>, Vec<&PayloadAlert>) {
    n.alerts
        .iter()
        .partition(|a| a.status == NotifyStatus::Firing)
}

/// `2 alerts for alertname=HighErrorRate`.
fn intro(n: &Notification) -> String {
    let count = n.alerts.len();
    let mut s = format!("{count} alert{} for", if count == 1 { "" } else { "s" });
    if n.group_labels.is_empty() {
        s.push_str(" this group");
    }
    for (k, v) in sorted_pairs(&n.group_labels) {
        let _ = write!(s, " {k}={v}");
    }
    s
}

/// The plain-text body.
pub fn plain_text(n: &Notification, subject: &str) -> String {
    let mut s = format!("{subject}\n\n{}\n", intro(n));
    let (firing, resolved) = partition(n);
    for (name, alerts) in [("Firing", firing), ("Resolved", resolved)] {
        if alerts.is_empty() {
            continue;
        }
        let _ = write!(s, "\n[{}] {name}\n", alerts.len());
        for a in alerts {
            s.push_str("\nLabels:\n");
            for (k, v) in sorted_pairs(&a.labels) {
                let _ = writeln!(s, "  {k} = {v}");
            }
            if !a.annotations.is_empty() {
                s.push_str("Annotations:\n");
                for (k, v) in &a.annotations {
                    let _ = writeln!(s, "  {k} = {v}");
                }
            }
            let _ = writeln!(s, "Started: {}", a.starts_at);
            if a.status == NotifyStatus::Resolved {
                let _ = writeln!(s, "Ended: {}", a.ends_at);
            }
            if !a.generator_url.is_empty() {
                let _ = writeln!(s, "Source: {}", a.generator_url);
            }
        }
    }
    let _ = write!(s, "\nSent by Tidemark to receiver {}", n.receiver);
    if !n.external_url.is_empty() {
        let _ = write!(s, " ({})", n.external_url);
    }
    s.push('\n');
    s
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML body: a heading coloured by status and one table per alert.
pub fn html(n: &Notification, subject: &str) -> String {
    let e = html_escape;
    let colour = match n.status {
        NotifyStatus::Firing => "#d63232",
        NotifyStatus::Resolved => "#2eb886",
    };
    let mut s = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif;font-size:14px\">\n",
    );
    let _ = writeln!(
        s,
        "<h2 style=\"color:{colour}\">{}</h2>\n<p>{}</p>",
        e(subject),
        e(&intro(n))
    );
    let (firing, resolved) = partition(n);
    for (name, alerts) in [("Firing", firing), ("Resolved", resolved)] {
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(s, "<h3>[{}] {name}</h3>", alerts.len());
        for a in alerts {
            s.push_str("<table style=\"border-collapse:collapse;margin-bottom:12px\">\n");
            let row = |s: &mut String, k: &str, v: &str| {
                let _ = writeln!(
                    s,
                    "<tr><td style=\"padding:2px 8px;color:#666\">{}</td>\
                     <td style=\"padding:2px 8px\">{}</td></tr>",
                    e(k),
                    e(v)
                );
            };
            s.push_str("<tr><th colspan=\"2\" align=\"left\">Labels</th></tr>\n");
            for (k, v) in sorted_pairs(&a.labels) {
                row(&mut s, k, v);
            }
            if !a.annotations.is_empty() {
                s.push_str("<tr><th colspan=\"2\" align=\"left\">Annotations</th></tr>\n");
                for (k, v) in &a.annotations {
                    row(&mut s, k, v);
                }
            }
            row(&mut s, "Started", &a.starts_at);
            if a.status == NotifyStatus::Resolved {
                row(&mut s, "Ended", &a.ends_at);
            }
            if !a.generator_url.is_empty() {
                let _ = writeln!(
                    s,
                    "<tr><td colspan=\"2\" style=\"padding:2px 8px\">\
                     <a href=\"{}\">Source</a></td></tr>",
                    e(&a.generator_url)
                );
            }
            s.push_str("</table>\n");
        }
    }
    let _ = write!(
        s,
        "<p style=\"color:#666\">Sent by Tidemark to receiver {}",
        e(&n.receiver)
    );
    if !n.external_url.is_empty() {
        let _ = write!(s, " (<a href=\"{0}\">{0}</a>)", e(&n.external_url));
    }
    s.push_str("</p>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::super::text::tests::checkout;
    use super::*;

    #[test]
    fn subject_defaults_to_alertmanagers_and_never_breaks_lines() {
        let n = checkout(NotifyStatus::Firing);
        assert_eq!(
            subject(&n, None),
            "[FIRING:2] HighErrorRate (checkout critical)"
        );
        let t = GroupTemplate::parse("{{ $labels.service }}\r\nBcc: x@evil").unwrap();
        assert_eq!(subject(&n, Some(&t)), "checkout  Bcc: x@evil");
    }

    #[test]
    fn plain_text_lists_firing_then_resolved() {
        let mut n = checkout(NotifyStatus::Firing);
        n.alerts[1].status = NotifyStatus::Resolved;
        n.alerts[1].ends_at = "2026-11-27T07:10:00.000Z".into();
        n.alerts[0].generator_url = "http://x/graph?g0.expr=up".into();
        let text = plain_text(&n, "S");
        assert_eq!(
            text,
            "S\n\n2 alerts for alertname=HighErrorRate\n\
             \n[1] Firing\n\
             \nLabels:\n  alertname = HighErrorRate\n  instance = a:1\n  service = checkout\n  severity = critical\n\
             Annotations:\n  summary = Error rate above 15%\n\
             Started: 2026-11-27T07:00:00.000Z\n\
             Source: http://x/graph?g0.expr=up\n\
             \n[1] Resolved\n\
             \nLabels:\n  alertname = HighErrorRate\n  instance = b:1\n  service = checkout\n  severity = critical\n\
             Annotations:\n  summary = Error rate above 15%\n\
             Started: 2026-11-27T07:00:00.000Z\n\
             Ended: 2026-11-27T07:10:00.000Z\n\
             \nSent by Tidemark to receiver ops (http://127.0.0.1:9201)\n"
        );
    }

    #[test]
    fn html_escapes_alert_text() {
        let mut n = checkout(NotifyStatus::Firing);
        n.alerts[0].annotations.insert(
            "description".into(),
            "<script>alert(1)</script> & \"q\"".into(),
        );
        let h = html(&n, "[FIRING:2] A <b>");
        assert!(
            h.contains("<h2 style=\"color:#d63232\">[FIRING:2] A &lt;b&gt;</h2>"),
            "{h}"
        );
        assert!(h.contains(
            "<td style=\"padding:2px 8px\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</td>"
        ));
        assert!(!h.contains("<script>"));
        assert!(h.contains("<h3>[2] Firing</h3>"));
        assert!(!h.contains("Resolved</h3>"));
        assert_eq!(h.matches("<table").count(), 2);
    }
}
