//! The page for people: `GET /` and `GET /docs` answer the app's HTML, and
//! `GET /ui/<name>-<hash>.<ext>` its scripts, style sheet and icon, all compiled in from
//! `src/ui/`. Static bytes and their headers only: no token, no store, no API logic (the page
//! calls the API like any other client). These routes are not API operations, so the OpenAPI
//! document does not list them.

use std::sync::OnceLock;

use crate::http::{Request, Response};

/// One file of the page, served under a name that carries a hash of its bytes, so that a
/// browser may keep it for a year and still never runs an old script against a new server.
struct Asset {
    /// As `index.html` refers to it: `/ui/<name>`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// FNV-1a of `body`, computed when the binary is built.
    hash: u64,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../ui/", $name)),
            hash: fnv1a(include_bytes!(concat!("../ui/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every asset the HTML loads. Scripts run in this order (they are `defer`red): helpers first,
/// then one file per view, `app.js` (the router) last.
const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("dom.js", JS),
    asset!("api.js", JS),
    asset!("projects.js", JS),
    asset!("tokens.js", JS),
    asset!("keys.js", JS),
    asset!("value.js", JS),
    asset!("docs.js", JS),
    asset!("app.js", JS),
];

/// The app's HTML as written; `/ui/<name>` references are given their hashed names when served.
const INDEX: &str = include_str!("../ui/index.html");

/// What the page may load and do: only files from this origin, no inline script or style, no
/// plugins, no `<base>`, no form posts (forms are handled by the scripts), no framing.
const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'; object-src 'none'";
/// The HTML is revalidated on every load (cheap: a 304 by ETag); hashed assets never change.
const HTML_CACHE: &str = "no-cache";
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// Which page file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The HTML, at `/` and `/docs` (the scripts show the docs view for the latter).
    App,
    /// An index into `ASSETS`.
    Asset(usize),
}

/// The page file at `path` (without its leading `/`), if any. An asset asked for under another
/// hash is not found: serving today's bytes under yesterday's immutable name would pin them.
pub fn route(path: &str) -> Option<Page> {
    if path.is_empty() || path == "docs" {
        return Some(Page::App);
    }
    let file = path.strip_prefix("ui/")?;
    ASSETS
        .iter()
        .position(|a| file == hashed_name(a))
        .map(Page::Asset)
}

/// `app.js` with hash 0x1f becomes `app-000000000000001f.js`.
fn hashed_name(a: &Asset) -> String {
    let (stem, ext) = a
        .name
        .rsplit_once('.')
        .expect("asset names have an extension");
    format!("{stem}-{:016x}.{ext}", a.hash)
}

/// `GET` or `HEAD` of a page file (the connection layer drops the body for HEAD).
pub fn get(req: &Request, page: Page) -> Response {
    match page {
        Page::App => {
            let (html, etag) = index();
            let html_type = "text/html; charset=utf-8";
            respond(req, html.as_bytes(), html_type, etag, HTML_CACHE)
        }
        Page::Asset(i) => {
            let a = &ASSETS[i];
            let etag = format!("\"{:016x}\"", a.hash);
            respond(req, a.body, a.content_type, &etag, ASSET_CACHE)
        }
    }
}

fn respond(
    req: &Request,
    body: &'static [u8],
    content_type: &'static str,
    etag: &str,
    cache: &'static str,
) -> Response {
    let unchanged = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let r = if unchanged {
        Response::empty(304)
    } else {
        Response::bytes(200, content_type, body.to_vec())
    };
    r.with_header("ETag", etag)
        .with_header("Cache-Control", cache)
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
}

/// The HTML with hashed asset names, and its ETag: built once, on the first request.
fn index() -> &'static (String, String) {
    static INDEX_PAGE: OnceLock<(String, String)> = OnceLock::new();
    INDEX_PAGE.get_or_init(|| {
        let mut html = INDEX.to_string();
        for a in ASSETS {
            let plain = format!("\"/ui/{}\"", a.name);
            let hashed = format!("\"/ui/{}\"", hashed_name(a));
            html = html.replace(&plain, &hashed);
        }
        let etag = format!("\"{:016x}\"", fnv1a(html.as_bytes()));
        (html, etag)
    })
}

/// FNV-1a, 64 bits: enough to tell one build's file from another's, and computable in a const.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page stays small: every asset and the HTML, before compression.
    const MAX_TOTAL_BYTES: usize = 80 * 1024;

    #[test]
    fn the_page_and_its_assets_fit_in_80_kb() {
        let total: usize = INDEX.len() + ASSETS.iter().map(|a| a.body.len()).sum::<usize>();
        assert!(total <= MAX_TOTAL_BYTES, "{total} bytes");
    }

    #[test]
    fn the_html_refers_to_every_asset_by_its_hashed_name_only() {
        let (html, _) = index();
        for a in ASSETS {
            assert!(INDEX.contains(&format!("\"/ui/{}\"", a.name)), "{}", a.name);
            assert!(html.contains(&format!("\"/ui/{}\"", hashed_name(a))));
            assert!(!html.contains(&format!("\"/ui/{}\"", a.name)));
        }
    }

    #[test]
    fn page_paths_parse_and_others_do_not() {
        assert_eq!(route(""), Some(Page::App));
        assert_eq!(route("docs"), Some(Page::App));
        assert_eq!(
            route(&format!("ui/{}", hashed_name(&ASSETS[0]))),
            Some(Page::Asset(0))
        );
        for bad in [
            "ui/",
            "ui/style.css",
            "ui/style-0000000000000000.css",
            "docs/",
            "index.html",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
