//! `pykv migrate etcd --roles`: the `etcdctl` commands, printed and never run, that give each
//! project token the same reach in etcd — a role with `read` or `readwrite` on the project's
//! keys and content types (or only under a scoped token's prefix) and a user holding it. Never
//! prints a secret: each user's password is read from an environment variable when the script
//! runs. Reads the data directory only through `persist::read_dir`; contacts nothing.

use std::io::Write;
use std::path::PathBuf;

use super::{Endpoint, MigrateError, Naming};
use crate::auth::{Access, Token};
use crate::persist;

#[derive(Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    pub project: Option<String>,
    pub naming: Naming,
    /// Written into the script as `ETCDCTL_ENDPOINTS` when given.
    pub endpoints: Option<Vec<Endpoint>>,
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<(), MigrateError> {
    let loaded =
        persist::read_dir(&opts.data_dir, opts.project.as_deref()).map_err(MigrateError::Data)?;
    let projects: Vec<(&str, &[Token])> = loaded
        .iter()
        .map(|l| (l.name.as_str(), l.project.tokens()))
        .collect();
    let urls = opts.endpoints.as_ref().map(|e| {
        e.iter()
            .map(|e| e.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    out.write_all(script(&projects, &opts.naming, urls.as_deref()).as_bytes())?;
    out.flush()?;
    Ok(())
}

const HEADER: &str = "\
#!/bin/sh
# etcd roles and users that give each pykv token the same reach in etcd, printed by
# `pykv migrate etcd --roles`: read it, then run it with sh. It holds no secret: each user's
# password is read from the environment variable named on its line, so set those first (one
# word each: etcdctl reads a password up to the first space). If etcd has authentication on
# already, run it as root (ETCDCTL_USER=root ETCDCTL_PASSWORD=...). pykv's admin token has no
# counterpart here: etcd's root user is the admin.
set -eu
export ETCDCTL_API=3
";

const FOOTER: &str = "
# Last, if etcd has no root user yet, turn authentication on (etcdctl asks for root's password):
#   etcdctl user add root && etcdctl user grant-role root root && etcdctl auth enable
";

/// The whole script for these projects and their tokens.
pub fn script(projects: &[(&str, &[Token])], naming: &Naming, endpoints: Option<&str>) -> String {
    let mut s = String::from(HEADER);
    if let Some(urls) = endpoints {
        s.push_str(&format!("export ETCDCTL_ENDPOINTS={}\n", quote(urls)));
    }
    let mut variables: Vec<String> = Vec::new();
    for (project, tokens) in projects {
        s.push_str(&format!("\n# project {project}\n"));
        if tokens.is_empty() {
            s.push_str("# (no tokens)\n");
        }
        for t in tokens.iter() {
            let variable = unique(password_variable(project, &t.id), &mut variables);
            s.push_str(&token_commands(project, t, naming, &variable));
        }
    }
    s.push_str(FOOTER);
    s
}

fn token_commands(project: &str, t: &Token, naming: &Naming, variable: &str) -> String {
    let name = quote(&format!("pykv-{project}-{}", t.id));
    let permission = match t.access {
        Access::Read => "read",
        Access::Write => "readwrite",
    };
    let scope = t.prefix.as_deref().unwrap_or("");
    let reach = match &t.prefix {
        Some(p) => format!("keys under {p:?}"),
        None => "every key of the project".to_string(),
    };
    let mut s = format!(
        "# token {} {:?}: {permission}, {reach}\n",
        t.id.escape_debug(),
        t.label
    );
    s.push_str(&format!("etcdctl role add {name}\n"));
    for prefix in [naming.project_prefix(project), naming.meta_prefix(project)] {
        s.push_str(&format!(
            "etcdctl role grant-permission --prefix=true {name} {permission} {}\n",
            quote(&format!("{prefix}{scope}"))
        ));
    }
    s.push_str(&format!(
        "printf '%s\\n' \"${variable}\" | etcdctl user add {name} --interactive=false\n"
    ));
    s.push_str(&format!("etcdctl user grant-role {name} {name}\n"));
    s
}

/// `PYKV_PASSWORD_` + project and token id in capitals, other characters as `_`.
fn password_variable(project: &str, id: &str) -> String {
    let tail: String = format!("{project}_{id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PYKV_PASSWORD_{tail}")
}

/// `name`, or `name_2`, `name_3`… when an earlier token already took it.
fn unique(name: String, taken: &mut Vec<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{name}_{n}");
    }
    taken.push(candidate.clone());
    candidate
}

/// A word for sh: as it is when plainly safe, else in single quotes.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:,=@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Source;

    fn token(id: &str, label: &str, access: Access, prefix: Option<&str>) -> Token {
        Token {
            id: id.into(),
            label: label.into(),
            access,
            secret: "pykv_0123456789abcdef0123456789abcdef".into(),
            source: Source::Config,
            prefix: prefix.map(Into::into),
        }
    }

    #[test]
    fn a_scoped_read_token_becomes_a_role_on_its_prefix() {
        let tokens = [token("cfg-1", "it's", Access::Read, Some("a b/"))];
        let naming = Naming::new("/pykv/").expect("valid");
        let s = script(&[("demo", &tokens)], &naming, Some("http://a:2379"));
        let body = s
            .strip_prefix(HEADER)
            .and_then(|b| b.strip_suffix(FOOTER))
            .expect("header and footer");
        assert_eq!(
            body,
            "export ETCDCTL_ENDPOINTS=http://a:2379\n\
             \n\
             # project demo\n\
             # token cfg-1 \"it's\": read, keys under \"a b/\"\n\
             etcdctl role add pykv-demo-cfg-1\n\
             etcdctl role grant-permission --prefix=true pykv-demo-cfg-1 read '/pykv/demo/a b/'\n\
             etcdctl role grant-permission --prefix=true pykv-demo-cfg-1 read '/pykv/.meta/demo/a b/'\n\
             printf '%s\\n' \"$PYKV_PASSWORD_DEMO_CFG_1\" | etcdctl user add pykv-demo-cfg-1 --interactive=false\n\
             etcdctl user grant-role pykv-demo-cfg-1 pykv-demo-cfg-1\n"
        );
        assert!(!s.contains("pykv_0123"));
    }

    #[test]
    fn password_variables_never_collide() {
        let mut taken = Vec::new();
        assert_eq!(
            unique(password_variable("a-b", "c"), &mut taken),
            "PYKV_PASSWORD_A_B_C"
        );
        assert_eq!(
            unique(password_variable("a", "b-c"), &mut taken),
            "PYKV_PASSWORD_A_B_C_2"
        );
    }

    #[test]
    fn quotes_survive_sh() {
        assert_eq!(quote("/pykv/demo/"), "/pykv/demo/");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
