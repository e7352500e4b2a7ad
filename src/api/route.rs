//! Routes: a request's method and path turned into a typed `Route` (the path segments kept
//! raw: they are checked after the caller is authorized, so an unauthorized caller learns
//! nothing from a 400), the methods each answers, its metrics label, the projects it uses, and
//! the OpenAPI document of them all. No handler code here.

use super::ui;

/// A request's target, typed. Path segments are kept raw here and validated by the handler
/// after authentication, so an unauthenticated client learns nothing from a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    OpenApi,
    Projects,
    Project(String),
    Tokens(String),
    Token(String, String),
    Export(String),
    Import(String),
    Keys(String),
    Key(String, String),
    /// The Python PyKV's routes, on `compat_project`.
    CompatPut(String),
    CompatGet(String, String),
    CompatDelete(String, String),
    /// `/put`, `/get/…` or `/delete/…` while `compat_project` is unset: a 404 that says how to
    /// turn them on.
    CompatOff,
    /// The page for people (`/`, `/docs`, `/ui/...`): see ui.rs.
    Page(ui::Page),
}

/// The OpenAPI 3.1 document of every route below, served at `GET /openapi.json`. A unit test
/// holds it and `ROUTES` to the router, path by path and method by method. It is kept indented
/// for people in openapi.json and compiled in without the indentation: half the bytes, in the
/// binary and on the wire.
pub static OPENAPI: &str = match std::str::from_utf8(&OPENAPI_COMPACT) {
    Ok(text) => text,
    Err(_) => panic!("openapi.json is UTF-8"),
};

const OPENAPI_PRETTY: &[u8] = include_bytes!("openapi.json");
static OPENAPI_COMPACT: [u8; compact_json(OPENAPI_PRETTY, &mut [])] = {
    let mut out = [0; compact_json(OPENAPI_PRETTY, &mut [])];
    compact_json(OPENAPI_PRETTY, &mut out);
    out
};

/// JSON text without the whitespace between tokens, into `out` (when it is long enough to hold
/// it; pass an empty one to learn the length). Returns the length. Whitespace inside strings is
/// kept (a string's escapes are skipped whole, so an escaped quote does not end it).
const fn compact_json(json: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut n, mut in_string) = (0, 0, false);
    while i < json.len() {
        let b = json[i];
        let keep = in_string || !matches!(b, b' ' | b'\n' | b'\r' | b'\t');
        if keep {
            if n < out.len() {
                out[n] = b;
            }
            n += 1;
        }
        if in_string && b == b'\\' && i + 1 < json.len() {
            if n < out.len() {
                out[n] = json[i + 1];
            }
            n += 1;
            i += 1;
        } else if b == b'"' {
            in_string = !in_string;
        }
        i += 1;
    }
    n
}

/// Every route as the OpenAPI document names it, with the methods it answers (besides OPTIONS,
/// which every route answers for CORS). The PyKV-compatible routes exist only when
/// `compat_project` is set. The page's routes (`Route::Page`) are left out on purpose: they
/// serve the page, not the API, and the document describes the API only.
pub const ROUTES: &[(&str, &str)] = &[
    ("/health", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/v1/projects", "GET, HEAD, POST"),
    ("/v1/projects/{project}", "GET, HEAD, PATCH, DELETE"),
    ("/v1/projects/{project}/tokens", "GET, HEAD, POST"),
    ("/v1/projects/{project}/tokens/{id}", "DELETE"),
    ("/v1/projects/{project}/export", "GET, HEAD"),
    ("/v1/projects/{project}/import", "POST"),
    ("/v1/kv/{project}", "GET, HEAD, POST"),
    ("/v1/kv/{project}/{key}", "GET, HEAD, PUT, POST, DELETE"),
    ("/put", "POST"),
    ("/get/{key}", "GET, HEAD"),
    ("/delete/{key}", "DELETE"),
];

/// Which projects a request reads or writes: the commit orders it against changes that are not
/// yet durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses<'a> {
    Nothing,
    Project(&'a str),
    AllProjects,
}

impl Route {
    /// `compat` is the project the PyKV-compatible routes work on, when enabled.
    pub fn parse(path: &str, compat: Option<&str>) -> Option<Route> {
        let rest = path.strip_prefix('/')?;
        if rest == "health" {
            return Some(Route::Health);
        }
        if rest == "metrics" {
            return Some(Route::Metrics);
        }
        if rest == "openapi.json" {
            return Some(Route::OpenApi);
        }
        if let Some(page) = ui::route(rest) {
            return Some(Route::Page(page));
        }
        let compat_path = rest == "put" || rest.starts_with("get/") || rest.starts_with("delete/");
        if compat.is_none() && compat_path {
            return Some(Route::CompatOff);
        }
        if let Some(project) = compat {
            let p = project.to_string();
            if rest == "put" {
                return Some(Route::CompatPut(p));
            }
            if let Some(key) = rest.strip_prefix("get/") {
                return Some(Route::CompatGet(p, key.to_string()));
            }
            if let Some(key) = rest.strip_prefix("delete/") {
                return Some(Route::CompatDelete(p, key.to_string()));
            }
        }
        let rest = rest.strip_prefix("v1/")?;
        if let Some(kv) = rest.strip_prefix("kv/") {
            return match kv.split_once('/') {
                None if !kv.is_empty() => Some(Route::Keys(kv.to_string())),
                None => None,
                Some((p, key)) if !p.is_empty() => Some(Route::Key(p.to_string(), key.to_string())),
                Some(_) => None,
            };
        }
        if rest == "projects" {
            return Some(Route::Projects);
        }
        let parts: Vec<&str> = rest.strip_prefix("projects/")?.split('/').collect();
        match parts.as_slice() {
            [p] if !p.is_empty() => Some(Route::Project(p.to_string())),
            [p, "tokens"] if !p.is_empty() => Some(Route::Tokens(p.to_string())),
            [p, "export"] if !p.is_empty() => Some(Route::Export(p.to_string())),
            [p, "import"] if !p.is_empty() => Some(Route::Import(p.to_string())),
            [p, "tokens", id] if !p.is_empty() && !id.is_empty() => {
                Some(Route::Token(p.to_string(), id.to_string()))
            }
            _ => None,
        }
    }

    /// The methods this route answers, as sent in `Allow`.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Health | Route::Metrics | Route::OpenApi | Route::Page(_) => "GET, HEAD",
            Route::Projects => "GET, HEAD, POST",
            Route::Project(_) => "GET, HEAD, PATCH, DELETE",
            Route::Tokens(_) => "GET, HEAD, POST",
            Route::Token(..) => "DELETE",
            Route::Export(_) => "GET, HEAD",
            Route::Import(_) => "POST",
            Route::Keys(_) => "GET, HEAD, POST",
            Route::Key(..) => "GET, HEAD, PUT, POST, DELETE",
            Route::CompatPut(_) => "POST",
            Route::CompatGet(..) => "GET, HEAD",
            Route::CompatDelete(..) => "DELETE",
            Route::CompatOff => "",
        }
    }

    /// A short fixed name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Projects => "projects",
            Route::Project(_) => "project",
            Route::Tokens(_) => "tokens",
            Route::Token(..) => "token",
            Route::Export(_) => "export",
            Route::Import(_) => "import",
            Route::Keys(_) => "kv_list",
            Route::Key(..) => "kv_key",
            Route::CompatPut(_)
            | Route::CompatGet(..)
            | Route::CompatDelete(..)
            | Route::CompatOff => "compat",
            Route::Page(_) => "ui",
        }
    }

    pub fn uses(&self) -> Uses<'_> {
        match self {
            Route::Health | Route::OpenApi | Route::Page(_) | Route::CompatOff => Uses::Nothing,
            Route::Metrics => Uses::AllProjects,
            Route::Projects => Uses::AllProjects,
            Route::Project(p)
            | Route::Tokens(p)
            | Route::Token(p, _)
            | Route::Export(p)
            | Route::Import(p)
            | Route::Keys(p)
            | Route::Key(p, _)
            | Route::CompatPut(p)
            | Route::CompatGet(p, _)
            | Route::CompatDelete(p, _) => Uses::Project(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_is_the_file_without_its_indentation() {
        let file: serde_json::Value = serde_json::from_slice(OPENAPI_PRETTY).unwrap();
        let served: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(
            served == file,
            "the served document differs from openapi.json"
        );
        assert!(
            OPENAPI.len() * 10 < OPENAPI_PRETTY.len() * 6,
            "{}",
            OPENAPI.len()
        );
        let mut out = [0; 32];
        let n = compact_json(b"{ \"a b\": [1, \"x\\\" \\n\" ] }\n", &mut out);
        assert_eq!(&out[..n], br#"{"a b":[1,"x\" \n"]}"#);
    }

    impl Route {
        fn parse_test(path: &str) -> Option<Route> {
            Route::parse(path, None)
        }
    }

    /// Every route in `ROUTES` parses to a route answering exactly those methods, and the
    /// OpenAPI document lists exactly these paths and methods.
    #[test]
    fn routes_and_the_openapi_document_agree() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let paths = doc["paths"].as_object().expect("paths");
        for (template, methods) in ROUTES {
            let sample = template
                .replace("{project}", "p")
                .replace("{id}", "i")
                .replace("{key}", "a/b");
            let route =
                Route::parse(&sample, Some("compat")).unwrap_or_else(|| panic!("{template}"));
            assert_eq!(route.allow(), *methods, "{template}");
            let item = paths
                .get(*template)
                .and_then(|v| v.as_object())
                .unwrap_or_else(|| panic!("openapi.json lacks {template}"));
            let mut documented: Vec<String> = item
                .keys()
                .filter(|k| {
                    !matches!(
                        k.as_str(),
                        "parameters" | "summary" | "description" | "options"
                    )
                })
                .map(|k| k.to_uppercase())
                .collect();
            documented.sort();
            let mut served: Vec<String> = methods.split(", ").map(str::to_string).collect();
            served.sort();
            assert_eq!(documented, served, "methods of {template}");
        }
        for path in paths.keys() {
            assert!(
                ROUTES.iter().any(|(t, _)| t == path),
                "openapi.json documents {path}, which the router does not serve"
            );
        }
    }

    #[test]
    fn routes_parse_from_paths() {
        assert_eq!(Route::parse_test("/health"), Some(Route::Health));
        assert_eq!(Route::parse_test("/v1/projects"), Some(Route::Projects));
        assert_eq!(
            Route::parse_test("/v1/projects/a"),
            Some(Route::Project("a".into()))
        );
        assert_eq!(
            Route::parse_test("/v1/projects/a/tokens/x"),
            Some(Route::Token("a".into(), "x".into()))
        );
        assert_eq!(Route::parse_test("/v1/kv/a"), Some(Route::Keys("a".into())));
        assert_eq!(
            Route::parse_test("/v1/kv/a/b/c"),
            Some(Route::Key("a".into(), "b/c".into()))
        );
        assert_eq!(
            Route::parse_test("/v1/kv/a/"),
            Some(Route::Key("a".into(), "".into()))
        );
        assert_eq!(Route::parse_test("/"), Some(Route::Page(ui::Page::App)));
        for bad in [
            "/v1",
            "/v1/kv",
            "/v1/kv/",
            "/v1/projects/",
            "/v1/projects/a/x",
            "/x",
        ] {
            assert_eq!(Route::parse_test(bad), None, "{bad}");
        }
    }
}
