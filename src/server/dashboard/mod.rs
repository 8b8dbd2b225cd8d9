//! The web dashboard at `/`: static assets (HTML, CSS, ES modules) compiled
//! into the binary with `include_str!`, so `cargo run -- serve` alone serves
//! it, offline.
//!
//! Invariants:
//! - The page holds no data: everything it shows comes from the Prometheus
//!   HTTP API and the endpoints in `../http-api.md`, fetched by the browser
//!   with the user's token. So `/` and `/assets/*` are open routes.
//! - Nothing is loaded from another origin (no CDN, no web fonts): the
//!   Content-Security-Policy sent with every asset forbids it, and a test
//!   checks that no asset names an `http(s)://` URL.
//! - Every file the HTML references is in [`ASSETS`] (tested).
//! - `screenshot.png` in this directory is documentation for the README and
//!   is not embedded.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Only same-origin scripts, styles, images and API calls.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("index.html");

/// The files served under `/assets/<name>`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("api.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("charts.js"),
    },
    Asset {
        name: "util.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("util.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("favicon.svg"),
    },
];

/// `/` and `/assets/{name}`; open routes (see the module doc).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

async fn index() -> Response {
    with_headers(INDEX, "text/html; charset=utf-8")
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => with_headers(a.body, a.content_type),
        None => (
            StatusCode::NOT_FOUND,
            format!("no dashboard asset named {name:?}\n"),
        )
            .into_response(),
    }
}

fn with_headers(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Assets change only with the binary; revalidating is cheap on loopback
    // and a new build is never hidden behind a stale cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `src="/assets/…"` / `href="/assets/…"` in the HTML and every
    /// `import … from './x.js'` in a module names an embedded asset.
    #[test]
    fn every_referenced_file_is_embedded() {
        let mut referenced = Vec::new();
        for (i, _) in INDEX.match_indices("/assets/") {
            let rest = &INDEX[i + "/assets/".len()..];
            let end = rest.find(['"', '\'', '?']).expect("quoted asset path");
            referenced.push(rest[..end].to_string());
        }
        for a in ASSETS {
            for (i, _) in a.body.match_indices("from './") {
                let rest = &a.body[i + "from './".len()..];
                let end = rest.find('\'').expect("quoted import");
                referenced.push(rest[..end].to_string());
            }
        }
        assert!(referenced.iter().any(|r| r == "app.js"), "{referenced:?}");
        assert!(
            referenced.iter().any(|r| r == "charts.js"),
            "{referenced:?}"
        );
        for r in &referenced {
            assert!(
                ASSETS.iter().any(|a| a.name == r),
                "{r} is referenced but not embedded"
            );
        }
    }

    /// Works offline: no asset loads anything from another origin.
    #[test]
    fn no_asset_names_another_origin() {
        let all =
            std::iter::once(("index.html", INDEX)).chain(ASSETS.iter().map(|a| (a.name, a.body)));
        for (name, body) in all {
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                // The SVG namespace URI is an identifier, not a fetch.
                let hits = body
                    .match_indices(scheme)
                    .filter(|(i, _)| !body[*i..].starts_with("http://www.w3.org/2000/svg"))
                    .count();
                assert_eq!(hits, 0, "{name} contains {scheme}");
            }
        }
    }

    #[tokio::test]
    async fn serves_index_and_assets_with_csp() {
        let r = index().await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(
            r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let r = asset(Path("charts.js".into())).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = asset(Path("../mod.rs".into())).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
