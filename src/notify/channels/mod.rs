//! Delivery channels and their construction from configuration.
//!
//! - [`console`]: human-readable blocks on stderr.
//! - [`file`]: JSON lines, rotated by size.
//! - [`webhook`]: HTTP POST of the Alertmanager v4 payload or a templated body.
//! - [`slack`]: Slack incoming webhook, coloured by severity.
//! - [`email`]: SMTP (plain, STARTTLS, TLS; AUTH), plain-text and HTML parts.
//! - [`text`]: titles, label order and templates Slack and email share.
//!
//! Invariant: [`build`] fails (naming the channel) rather than skipping a
//! channel it cannot construct.

pub mod console;
pub mod email;
pub mod file;
pub mod slack;
pub mod text;
pub mod webhook;

use std::sync::Arc;

use crate::notify::channel::Channel;
use crate::notify::config::ChannelConfig;

/// Constructs the channel `cfg` describes.
///
/// # Errors
/// A channel type not built in this version, or invalid settings.
pub fn build(cfg: &ChannelConfig) -> Result<Arc<dyn Channel>, String> {
    match cfg {
        ChannelConfig::Console => Ok(Arc::new(console::ConsoleChannel)),
        ChannelConfig::File(f) => Ok(Arc::new(file::FileChannel::new(f))),
        ChannelConfig::Webhook(w) => Ok(Arc::new(webhook::WebhookChannel::new(w)?)),
        ChannelConfig::Slack(s) => Ok(Arc::new(slack::SlackChannel::new(s)?)),
        ChannelConfig::Email(e) => Ok(Arc::new(email::EmailChannel::new(e)?)),
    }
}
