//! Moving a data directory onto a store made for more than one machine: etcd
//! (`pykv migrate etcd`, `--roles`) and Consul (`pykv export --format consul`). Here: the names
//! keys get there, which keys still count, and the errors and exit statuses of these commands.
//! Data is read only through `persist::read_dir`; nothing here writes the data directory or
//! touches a running server.
//!
//! - `args` — the command lines, parsed into typed options.
//! - `etcd/` — the migration: read, compare, write in guarded transactions, verify the counts
//!   (`plan` decides what to write, `verify` counts at the end, `report` words the lines).
//! - `gateway/` — etcd's v3 JSON gateway: the operations, and `endpoint`, `failover` (retries),
//!   `auth` and `messages` (the typed JSON).
//! - `http` — the small HTTP/1.1 client under it.
//! - `roles` — the `etcdctl` commands that mirror each project's tokens.
//! - `consul` — the JSON that `consul kv import` reads.

pub mod args;
pub mod consul;
pub mod etcd;
mod gateway;
mod http;
pub mod roles;

pub use gateway::{parse_endpoints, Credentials, Endpoint};

/// Where keys go in etcd unless `--prefix` says otherwise.
pub const ETCD_PREFIX: &str = "/pykv/";
/// Consul keys do not start with `/`.
pub const CONSUL_PREFIX: &str = "pykv/";

/// The names a project's keys and content types get in the target store:
/// `PFX` + project + `/` + key, and `PFX` + `.meta/` + project + `/` + key.
/// Project names start with a letter or digit, so `.meta/` never meets a project.
#[derive(Debug, Clone)]
pub struct Naming {
    prefix: String,
}

impl Naming {
    /// `prefix` is empty or ends with `/`, so that project names stay whole path segments.
    pub fn new(prefix: &str) -> Result<Naming, String> {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            return Err(format!("--prefix {prefix:?} must end with /"));
        }
        Ok(Naming {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn project_prefix(&self, project: &str) -> String {
        format!("{}{project}/", self.prefix)
    }

    pub fn meta_prefix(&self, project: &str) -> String {
        format!("{}.meta/{project}/", self.prefix)
    }

    pub fn key(&self, project: &str, key: &str) -> String {
        format!("{}{project}/{key}", self.prefix)
    }

    pub fn meta_key(&self, project: &str, key: &str) -> String {
        format!("{}.meta/{project}/{key}", self.prefix)
    }
}

/// Whether a key with this expiry still counts at Unix second `now` (the store's rule: a key
/// is gone once its second has come).
pub fn is_live(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_none_or(|t| t > now)
}

pub fn unix_now() -> u64 {
    crate::log::unix_now().0
}

/// Why `pykv migrate` or `pykv export --format consul` stopped.
#[derive(Debug)]
pub enum MigrateError {
    /// The command line is wrong.
    Usage(String),
    /// The data directory cannot be read.
    Data(String),
    /// etcd cannot be reached or refused a request.
    Etcd(String),
    /// Standard output cannot be written.
    Output(std::io::Error),
    /// Everything was written, but etcd's counts disagree with the data directory's.
    Mismatch(String),
}

impl MigrateError {
    /// 1 for a count mismatch (the data may be fine; someone must look), 2 for the rest.
    pub fn exit_status(&self) -> u8 {
        match self {
            MigrateError::Mismatch(_) => 1,
            _ => 2,
        }
    }
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::Usage(why) => write!(f, "{why}; see pykv --help"),
            MigrateError::Data(why) | MigrateError::Etcd(why) => write!(f, "{why}"),
            MigrateError::Output(e) => write!(f, "cannot write the output: {e}"),
            MigrateError::Mismatch(why) => write!(f, "count mismatch: {why}"),
        }
    }
}

impl From<std::io::Error> for MigrateError {
    fn from(e: std::io::Error) -> MigrateError {
        MigrateError::Output(e)
    }
}

impl From<gateway::EtcdError> for MigrateError {
    fn from(e: gateway::EtcdError) -> MigrateError {
        MigrateError::Etcd(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = Naming::new("/pykv/").expect("valid");
        assert_eq!(n.key("demo", "a/b c"), "/pykv/demo/a/b c");
        assert_eq!(n.meta_key("demo", "a"), "/pykv/.meta/demo/a");
        assert_eq!(n.project_prefix("demo"), "/pykv/demo/");
        assert_eq!(n.meta_prefix("demo"), "/pykv/.meta/demo/");
        assert_eq!(Naming::new("").expect("valid").key("p", "k"), "p/k");
        assert!(Naming::new("/pykv").is_err());
    }

    #[test]
    fn a_key_is_gone_once_its_second_has_come() {
        assert!(is_live(None, 100));
        assert!(is_live(Some(101), 100));
        assert!(!is_live(Some(100), 100));
    }
}
