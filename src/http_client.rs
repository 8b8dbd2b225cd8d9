//! The one place outbound HTTP clients are made (webhook and Slack
//! channels, the remote-write forwarder, `tidemark notify test`): reqwest
//! over rustls with the ring provider, which is installed process-wide
//! once (reqwest is built without a default provider, to avoid aws-lc's
//! build cost), a per-request timeout and Tidemark's user agent.
//!
//! Invariant: every client goes through [`client`], so the provider is
//! installed before any TLS handshake.

use std::sync::Once;
use std::time::Duration;

static PROVIDER: Once = Once::new();

/// Installs ring as rustls's process-wide crypto provider (once; a provider
/// someone else installed first is kept).
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with `timeout` per request.
///
/// # Errors
/// The client cannot be built (TLS backend initialisation); the message
/// includes every cause.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("tidemark/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))
}

/// An error and its sources, `: `-joined, skipping a source whose text
/// is already there (reqwest and lettre put the useful part, "connection
/// refused", in a source; their top-level message alone says only "error
/// sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
