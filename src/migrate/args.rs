//! The command lines of `pykv migrate etcd` and `pykv export`, parsed into typed options before
//! anything runs: `--flag VALUE` or `--flag=VALUE`, each at most once, unknown flags refused.
//! The password of `--password-env` is read here, from the environment, and never echoed.

use std::path::PathBuf;

use super::{
    consul, etcd, parse_endpoints, roles, Credentials, MigrateError, Naming, CONSUL_PREFIX,
    ETCD_PREFIX,
};

/// `pykv migrate etcd …`: a migration, or (`--roles`) the script of roles and users.
#[derive(Debug)]
pub enum EtcdCommand {
    Migrate(etcd::Options),
    Roles(roles::Options),
}

/// `pykv export …`: JSON lines for `POST /v1/projects/{p}/import`, or Consul's import format.
#[derive(Debug)]
pub enum ExportCommand {
    Jsonl {
        data_dir: PathBuf,
        project: Option<String>,
    },
    Consul(consul::Options),
}

fn usage(why: String) -> MigrateError {
    MigrateError::Usage(why)
}

/// Flags and their values, as given.
struct Flags<'a> {
    command: &'static str,
    given: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Flags<'a> {
    /// `valued` flags take a value; `switches` take none.
    fn parse(
        command: &'static str,
        args: &[&'a str],
        valued: &[&str],
        switches: &[&str],
    ) -> Result<Flags<'a>, MigrateError> {
        let mut given: Vec<(&'a str, Option<&'a str>)> = Vec::new();
        let mut rest = args.iter();
        while let Some(&arg) = rest.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v)),
                _ => (arg, None),
            };
            let value = if valued.contains(&name) {
                match inline {
                    Some(v) => Some(v),
                    None => Some(
                        *rest
                            .next()
                            .ok_or_else(|| usage(format!("{command}: {name} needs a value")))?,
                    ),
                }
            } else if switches.contains(&name) && inline.is_none() {
                None
            } else {
                return Err(usage(format!("{command}: unknown argument {arg:?}")));
            };
            if given.iter().any(|(n, _)| *n == name) {
                return Err(usage(format!("{command}: {name} given twice")));
            }
            given.push((name, value));
        }
        Ok(Flags { command, given })
    }

    fn value(&self, name: &str) -> Option<&'a str> {
        self.given
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| *n == name)
    }

    fn required(&self, name: &str) -> Result<&'a str, MigrateError> {
        self.value(name)
            .ok_or_else(|| usage(format!("{}: {name} is required", self.command)))
    }
}

/// `pykv migrate etcd --data-dir DIR --endpoints URL[,URL…] [--project P] [--prefix PFX]
/// [--user U --password-env VAR] [--dry-run]`, or `… --roles` (endpoints optional).
/// `env` looks up environment variables (the process's, in `main`).
pub fn migrate_etcd(
    args: &[&str],
    env: impl Fn(&str) -> Option<String>,
) -> Result<EtcdCommand, MigrateError> {
    let f = Flags::parse(
        "pykv migrate etcd",
        args,
        &[
            "--data-dir",
            "--endpoints",
            "--project",
            "--prefix",
            "--user",
            "--password-env",
        ],
        &["--dry-run", "--roles"],
    )?;
    let data_dir = PathBuf::from(f.required("--data-dir")?);
    let project = f.value("--project").map(str::to_string);
    let naming = Naming::new(f.value("--prefix").unwrap_or(ETCD_PREFIX)).map_err(usage)?;
    let endpoints = f
        .value("--endpoints")
        .map(parse_endpoints)
        .transpose()
        .map_err(usage)?;
    if f.has("--roles") {
        if f.has("--user") || f.has("--password-env") || f.has("--dry-run") {
            return Err(usage(
                "pykv migrate etcd --roles only prints commands: it takes --data-dir, \
                 --project, --prefix and --endpoints"
                    .into(),
            ));
        }
        return Ok(EtcdCommand::Roles(roles::Options {
            data_dir,
            project,
            naming,
            endpoints,
        }));
    }
    let endpoints = endpoints.ok_or_else(|| {
        usage("pykv migrate etcd: --endpoints is required (e.g. http://10.0.0.1:2379)".into())
    })?;
    let credentials =
        match (f.value("--user"), f.value("--password-env")) {
            (None, None) => None,
            (Some(user), Some(var)) => {
                let password = env(var).unwrap_or_default();
                if password.is_empty() {
                    return Err(usage(format!(
                        "--password-env {var}: the environment variable {var} is not set or empty"
                    )));
                }
                Some(Credentials::new(user.to_string(), password))
            }
            (Some(_), None) => return Err(usage(
                "--user needs --password-env VAR (a password is never taken on the command line)"
                    .into(),
            )),
            (None, Some(_)) => return Err(usage("--password-env needs --user".into())),
        };
    Ok(EtcdCommand::Migrate(etcd::Options {
        data_dir,
        endpoints,
        project,
        naming,
        credentials,
        dry_run: f.has("--dry-run"),
    }))
}

/// `pykv export --data-dir DIR [--project P] [--format jsonl|consul] [--prefix PFX]`
/// (`--prefix` only with consul).
pub fn export(args: &[&str]) -> Result<ExportCommand, MigrateError> {
    let f = Flags::parse(
        "pykv export",
        args,
        &["--data-dir", "--project", "--format", "--prefix"],
        &[],
    )?;
    let data_dir = PathBuf::from(f.required("--data-dir")?);
    let project = f.value("--project").map(str::to_string);
    match f.value("--format").unwrap_or("jsonl") {
        "jsonl" if f.has("--prefix") => Err(usage(
            "pykv export: --prefix goes with --format consul".into(),
        )),
        "jsonl" => Ok(ExportCommand::Jsonl { data_dir, project }),
        "consul" => {
            let prefix = f.value("--prefix").unwrap_or(CONSUL_PREFIX);
            if prefix.starts_with('/') {
                return Err(usage(format!(
                    "pykv export: --prefix {prefix:?}: Consul keys do not start with /"
                )));
            }
            Ok(ExportCommand::Consul(consul::Options {
                data_dir,
                project,
                naming: Naming::new(prefix).map_err(usage)?,
            }))
        }
        other => Err(usage(format!(
            "pykv export: --format {other:?}: jsonl or consul"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_migration_takes_flags_in_any_order() {
        let cmd = migrate_etcd(
            &[
                "--endpoints=http://a:2379,b:2379",
                "--dry-run",
                "--data-dir",
                "/d",
                "--prefix",
                "/x/",
                "--user",
                "app",
                "--password-env",
                "PW",
            ],
            |v| (v == "PW").then(|| "secret".to_string()),
        )
        .expect("valid");
        let EtcdCommand::Migrate(o) = cmd else {
            panic!("a migration")
        };
        assert_eq!(o.endpoints.len(), 2);
        assert_eq!(o.naming.prefix(), "/x/");
        assert!(o.dry_run);
        assert_eq!(o.credentials.map(|c| c.user), Some("app".to_string()));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let err = |args: &[&str]| match migrate_etcd(args, no_env) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("accepted {args:?}: {c:?}"),
        };
        assert!(err(&["--data-dir", "d"]).contains("--endpoints is required"));
        assert!(err(&["--data-dir", "d", "--data-dir", "e"]).contains("given twice"));
        assert!(
            err(&["--data-dir", "d", "--endpoints", "a:1", "--user", "u"])
                .contains("--password-env")
        );
        assert!(err(&[
            "--data-dir",
            "d",
            "--endpoints",
            "a:1",
            "--user",
            "u",
            "--password-env",
            "NOPE"
        ])
        .contains("NOPE is not set"));
        assert!(err(&["--data-dir", "d", "--roles", "--dry-run"]).contains("only prints"));
        assert!(err(&["--data-dir", "d", "--frobnicate"]).contains("unknown argument"));
        assert!(err(&["--data-dir"]).contains("needs a value"));
    }

    #[test]
    fn roles_need_no_endpoints() {
        let cmd = migrate_etcd(&["--roles", "--data-dir", "d"], no_env).expect("valid");
        assert!(matches!(cmd, EtcdCommand::Roles(_)));
    }

    #[test]
    fn export_formats() {
        assert!(matches!(
            export(&["--data-dir", "d"]).expect("valid"),
            ExportCommand::Jsonl { .. }
        ));
        let ExportCommand::Consul(o) =
            export(&["--format", "consul", "--data-dir", "d"]).expect("valid")
        else {
            panic!("consul")
        };
        assert_eq!(o.naming.prefix(), "pykv/");
        assert!(export(&["--data-dir", "d", "--prefix", "x/"]).is_err());
        assert!(export(&["--data-dir", "d", "--format", "consul", "--prefix", "/x/"]).is_err());
        assert!(export(&["--data-dir", "d", "--format", "xml"]).is_err());
    }
}
