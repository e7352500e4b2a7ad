//! config.json: its types (serde, unknown fields rejected), defaults and validation; where the
//! file is looked for (find.rs), `listen`'s forms (listen.rs), and errors that name the field
//! (error.rs). Reads one file; knows nothing of sockets, the store or snapshots.

mod error;
mod find;
pub mod listen;

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::ConfigError;
pub use find::{find, installed_config};

use crate::auth::{self, Access};
use crate::store::Persistence;
use crate::wholenum;
use error::{invalid, Invalid};

/// The whole configuration, as validated at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    pub persistence: Persistence,
    pub interval_ms: u64,
    /// A journal is compacted into a fresh snapshot once it is larger than its snapshot and
    /// than this.
    pub compaction_min_bytes: u64,
    pub max_connections: usize,
    pub max_watches: usize,
    pub cors_origins: Vec<String>,
    pub compat_project: Option<String>,
    pub log_requests: bool,
    pub limits: Limits,
    pub projects: BTreeMap<String, ProjectConfig>,
}

/// Every bound the server enforces on what clients send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    #[serde(deserialize_with = "bytes")]
    pub max_head_bytes: usize,
    #[serde(deserialize_with = "count")]
    pub max_headers: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_url_bytes: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_value_bytes: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_import_bytes: usize,
    #[serde(deserialize_with = "bytes")]
    pub max_key_bytes: usize,
    #[serde(deserialize_with = "opt_count")]
    pub max_keys_per_project: Option<usize>,
    #[serde(deserialize_with = "millis")]
    pub head_timeout_ms: u64,
    #[serde(deserialize_with = "millis")]
    pub body_timeout_ms: u64,
    #[serde(deserialize_with = "millis")]
    pub idle_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_url_bytes: 8 * 1024,
            max_value_bytes: 1024 * 1024,
            max_import_bytes: 64 * 1024 * 1024,
            max_key_bytes: 1024,
            max_keys_per_project: None,
            head_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    #[serde(default)]
    pub persistence: Option<Persistence>,
    #[serde(default, deserialize_with = "wholenum::opt")]
    pub max_keys: Option<u64>,
    #[serde(default, deserialize_with = "wholenum::opt")]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub label: String,
    pub access: Access,
    pub secret: String,
    /// Scope the token to keys starting with this.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// The file as written; turned into `Config` by `validate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_data_dir")]
    data_dir: String,
    #[serde(default)]
    admin_token: Option<String>,
    #[serde(default)]
    persistence: Option<Persistence>,
    #[serde(default = "default_interval_ms", deserialize_with = "millis")]
    interval_ms: u64,
    #[serde(default = "default_compaction_min_bytes", deserialize_with = "bytes")]
    compaction_min_bytes: u64,
    #[serde(default = "default_max_connections", deserialize_with = "count")]
    max_connections: usize,
    #[serde(default = "default_max_watches", deserialize_with = "count")]
    max_watches: usize,
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    compat_project: Option<String>,
    #[serde(default = "default_true")]
    log_requests: bool,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    projects: BTreeMap<String, ProjectConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> String {
    "./data".into()
}
fn default_interval_ms() -> u64 {
    1000
}
fn default_compaction_min_bytes() -> u64 {
    1024 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_watches() -> usize {
    1000
}
fn default_true() -> bool {
    true
}

/// A whole number of `T`, said in errors as `what`.
fn whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    d: D,
    what: &'static str,
) -> Result<T, D::Error> {
    let n = wholenum::described(d, what)?;
    T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is too large here")))
}
fn bytes<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    whole(d, "a whole number of bytes")
}
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    whole(d, "a whole number")
}
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole(d, "a whole number of milliseconds")
}
fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = wholenum::opt(d)?;
    n.map(usize::try_from)
        .transpose()
        .map_err(|_| serde::de::Error::custom("too large for this machine"))
}

/// Load and validate a config file. The error names the field or the place in the file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let raw: RawConfig =
        crate::jsonerr::parse(&text).map_err(|e| error::from_json(path.to_path_buf(), &text, e))?;
    validate(raw, path).map_err(|Invalid { field, message }| ConfigError::Field {
        path: path.to_path_buf(),
        field,
        message,
    })
}

fn validate(raw: RawConfig, path: &Path) -> Result<Config, Invalid> {
    let listen = listen::parse(&raw.listen).map_err(|e| invalid("listen", e))?;
    if raw.data_dir.is_empty() {
        return Err(invalid("data_dir", "must not be empty"));
    }
    // Relative paths follow the config file, so `--config /etc/pykv/config.json` means the same
    // wherever the server is started from.
    let base = path.parent().unwrap_or(Path::new("."));
    let data_dir = base.join(&raw.data_dir);
    if let Some(t) = &raw.admin_token {
        auth::validate_secret(t).map_err(|e| invalid("admin_token", e))?;
    }
    if raw.interval_ms == 0 || raw.interval_ms > 3_600_000 {
        return Err(invalid("interval_ms", "must be between 1 and 3600000"));
    }
    if raw.compaction_min_bytes == 0 || raw.compaction_min_bytes > 1 << 40 {
        return Err(invalid(
            "compaction_min_bytes",
            "must be between 1 and 1099511627776",
        ));
    }
    if raw.max_connections == 0 || raw.max_connections > 65_536 {
        return Err(invalid("max_connections", "must be between 1 and 65536"));
    }
    if raw.max_watches == 0 || raw.max_watches > 65_536 {
        return Err(invalid("max_watches", "must be between 1 and 65536"));
    }
    for o in &raw.cors_origins {
        if !is_origin(o) {
            return Err(invalid(
                "cors_origins",
                format!(
                    "{o:?} is not an origin like https://example.org or http://host:8080 \
                     (scheme and host, no path), or \"*\""
                ),
            ));
        }
    }
    if let Some(p) = &raw.compat_project {
        crate::store::validate_project_name(p).map_err(|e| invalid("compat_project", e))?;
    }
    validate_limits(&raw.limits)?;
    let mut seen_secrets = std::collections::HashSet::new();
    if let Some(t) = &raw.admin_token {
        seen_secrets.insert(t.clone());
    }
    for (name, p) in &raw.projects {
        crate::store::validate_project_name(name)
            .map_err(|e| invalid(format!("projects[{name:?}]"), e))?;
        for (i, t) in p.tokens.iter().enumerate() {
            let field = format!("projects.{name}.tokens[{i}]");
            if !crate::auth::label_ok(&t.label) {
                return Err(invalid(
                    format!("{field}.label"),
                    "must be 1 to 64 characters",
                ));
            }
            auth::validate_secret(&t.secret).map_err(|e| invalid(format!("{field}.secret"), e))?;
            if t.prefix
                .as_ref()
                .is_some_and(|p| p.is_empty() || p.len() > raw.limits.max_key_bytes)
            {
                return Err(invalid(
                    format!("{field}.prefix"),
                    "must be 1 to limits.max_key_bytes bytes",
                ));
            }
            if !seen_secrets.insert(t.secret.clone()) {
                return Err(invalid(
                    format!("{field}.secret"),
                    "the same secret is used twice in config.json",
                ));
            }
        }
    }
    Ok(Config {
        path: path.to_path_buf(),
        listen,
        data_dir,
        admin_token: raw.admin_token,
        persistence: raw.persistence.unwrap_or(Persistence::Sync),
        interval_ms: raw.interval_ms,
        compaction_min_bytes: raw.compaction_min_bytes,
        max_connections: raw.max_connections,
        max_watches: raw.max_watches,
        cors_origins: raw.cors_origins,
        compat_project: raw.compat_project,
        log_requests: raw.log_requests,
        limits: raw.limits,
        projects: raw.projects,
    })
}

/// `*`, or `http(s)://host[:port]` exactly as browsers send it in `Origin`.
fn is_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some(host) = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
    else {
        return false;
    };
    // An IPv6 literal keeps its colons inside brackets.
    let (name, rest) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') => {
                (addr, rest)
            }
            _ => return false,
        },
        None => match host.find(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        },
    };
    let port_ok = match rest.strip_prefix(':') {
        Some(port) => {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => rest.is_empty(),
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
        && port_ok
}

fn validate_limits(l: &Limits) -> Result<(), Invalid> {
    let ranges: [(&str, usize, usize, usize); 7] = [
        (
            "max_import_bytes",
            l.max_import_bytes,
            1,
            // 16 GiB, or what a 32-bit ARM board can address.
            usize::try_from(16_u64 << 30).unwrap_or(usize::MAX),
        ),
        ("max_head_bytes", l.max_head_bytes, 1024, 1024 * 1024),
        ("max_headers", l.max_headers, 8, 1000),
        ("max_url_bytes", l.max_url_bytes, 64, 1024 * 1024),
        ("max_value_bytes", l.max_value_bytes, 1, 1024 * 1024 * 1024),
        ("max_key_bytes", l.max_key_bytes, 1, crate::store::MAX_KEY),
        (
            "max_keys_per_project",
            l.max_keys_per_project.unwrap_or(1),
            1,
            usize::MAX,
        ),
    ];
    for (name, v, lo, hi) in ranges {
        if v < lo || v > hi {
            return Err(invalid(
                format!("limits.{name}"),
                format!("{v} is outside {lo}..={hi}"),
            ));
        }
    }
    for (name, v) in [
        ("head_timeout_ms", l.head_timeout_ms),
        ("body_timeout_ms", l.body_timeout_ms),
        ("idle_timeout_ms", l.idle_timeout_ms),
    ] {
        if !(100..=3_600_000).contains(&v) {
            return Err(invalid(
                format!("limits.{name}"),
                format!("{v} is outside 100..=3600000"),
            ));
        }
    }
    if l.max_url_bytes > l.max_head_bytes {
        return Err(invalid(
            "limits.max_url_bytes",
            "must not exceed limits.max_head_bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let path = Path::new("/etc/pykv/config.json");
        let raw: RawConfig = crate::jsonerr::parse(text.as_bytes())
            .map_err(|e| error::from_json(path.into(), text.as_bytes(), e).to_string())?;
        validate(raw, path).map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn defaults_apply_to_an_empty_object() {
        let c = parse("{}").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("/etc/pykv/./data"));
        assert_eq!(c.limits.max_value_bytes, 1024 * 1024);
        assert_eq!(c.persistence, Persistence::Sync);
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = parse(r#"{"listn": "x"}"#).unwrap_err();
        assert!(e.contains("listn"), "{e}");
        let e = parse(r#"{"limits": {"max_body": 1}}"#).unwrap_err();
        assert!(e.contains("max_body"), "{e}");
    }

    #[test]
    fn cors_origins_are_scheme_and_host_only() {
        for ok in [
            "*",
            "https://a.example",
            "http://localhost:8080",
            "http://[::1]:3000",
        ] {
            assert!(is_origin(ok), "{ok}");
        }
        for bad in [
            "https://a.example/app",
            "https://a.example?x",
            "a.example",
            "https://",
            "ftp://a",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn a_type_error_names_its_field() {
        let e = parse(r#"{"limits": {"max_value_bytes": "big"}}"#).unwrap_err();
        assert_eq!(
            e,
            "/etc/pykv/config.json: limits.max_value_bytes: expected a whole number of bytes, \
             got the string \"big\""
        );
        let e = parse(r#"{"projects": {"demo": {"tokens": [{"label": 5}]}}}"#).unwrap_err();
        assert_eq!(
            e,
            "/etc/pykv/config.json: projects.demo.tokens[0].label: expected a string, \
             got the number 5"
        );
        let e = parse(r#"{"persistence": "fast"}"#).unwrap_err();
        assert!(
            e.starts_with("/etc/pykv/config.json: persistence: unknown variant"),
            "{e}"
        );
        // 7.0 is a whole number too.
        assert_eq!(parse(r#"{"interval_ms": 250.0}"#).unwrap().interval_ms, 250);
    }

    #[test]
    fn a_comment_is_said_to_be_one() {
        let e = parse("{\n  // the port\n  \"listen\": \":8080\"\n}").unwrap_err();
        assert!(
            e.starts_with("/etc/pykv/config.json: line 2 column 3: JSON has no comments"),
            "{e}"
        );
        let e = parse("{} {}").unwrap_err();
        assert!(
            e.starts_with("/etc/pykv/config.json: line 1 column 4: trailing"),
            "{e}"
        );
    }

    #[test]
    fn a_zero_limit_is_refused() {
        let e = parse(r#"{"limits": {"max_value_bytes": 0}}"#).unwrap_err();
        assert!(e.starts_with("limits.max_value_bytes"), "{e}");
    }
}
