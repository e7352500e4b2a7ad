//! Start-up, before the loop runs: the admin token (config.json, the environment, or a file it
//! generates), the store (projects loaded from the data directory, then config.json's over
//! them), and the disk side of the loaded projects. Called by `main` (and by tests that run the
//! router in-process); never exits the process: errors are one line for `main` to print.

use crate::auth::{self, Source, Token};
use crate::config::Config;
use crate::log;
use crate::persist::disk::OnDisk;
use crate::persist::{self, Disk};
use crate::status::Status;
use crate::store::{Persistence, Project, Quota, Store};

/// The admin token: config.json, else $PYKV_ADMIN_TOKEN, else `data_dir/admin.token`, created
/// (0600) on first start. Returns the token and where it came from (for the log; never the token).
pub fn admin_token(cfg: &Config) -> Result<(String, String), String> {
    if let Some(t) = &cfg.admin_token {
        return Ok((t.clone(), "from config.json".into()));
    }
    if let Ok(t) = std::env::var("PYKV_ADMIN_TOKEN") {
        auth::validate_secret(&t).map_err(|e| format!("PYKV_ADMIN_TOKEN: {e}"))?;
        return Ok((t, "from PYKV_ADMIN_TOKEN".into()));
    }
    let path = cfg.data_dir.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let t = text.trim().to_string();
            auth::validate_secret(&t).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((t, format!("read from {}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = auth::generate_secret().map_err(|e| format!("no randomness: {e}"))?;
            persist::write_atomic(&cfg.data_dir, "admin.token", |w| {
                use std::io::Write;
                writeln!(w, "{t}")
            })
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok((t, format!("generated and stored in {}", path.display())))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Projects from the data directory (snapshots with their journals replayed), then
/// config.json's projects over them: config.json owns a declared project's settings and tokens,
/// its files own the keys. Returns the store and each loaded project's files.
pub fn load_store(cfg: &Config) -> Result<(Store, Vec<(String, OnDisk)>), String> {
    let mut store = Store::new(cfg.limits.max_keys_per_project);
    let (loaded, notes) = persist::load_dir(&cfg.data_dir)?;
    for note in notes {
        log::now(format_args!("{note}"));
    }
    let mut files = Vec::with_capacity(loaded.len());
    for l in loaded {
        let mut project = l.project;
        if project.source() == Source::Config && !cfg.projects.contains_key(&l.name) {
            project.release_from_config();
        }
        files.push((l.name.clone(), l.files));
        store.insert_loaded(l.name, project);
    }
    apply_config(cfg, &mut store);
    // The PyKV routes would answer 404 for every key: better not to start.
    if let Some(name) = &cfg.compat_project {
        if store.project(name).is_none() {
            return Err(format!(
                "compat_project {name:?} names no project: declare it under \"projects\" in \
                 config.json (or create it with POST /v1/projects while compat_project is \
                 unset), then start again"
            ));
        }
    }
    Ok((store, files))
}

/// config.json's projects over what was loaded: config.json owns a declared project's settings
/// and tokens, its files own the keys; a declared project with no files starts empty.
pub fn apply_config(cfg: &Config, store: &mut Store) {
    for (name, pc) in &cfg.projects {
        let tokens: Vec<Token> = pc
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| Token {
                id: format!("cfg-{}", i + 1),
                label: t.label.clone(),
                access: t.access,
                secret: t.secret.clone(),
                source: Source::Config,
                prefix: t.prefix.clone(),
            })
            .collect();
        let mode = pc.persistence.unwrap_or(cfg.persistence);
        let quota = Quota {
            max_keys: pc.max_keys,
            max_bytes: pc.max_bytes,
        };
        match store.project_mut_for_startup(name) {
            Some(p) => p.adopt_config(mode, quota, tokens),
            None => store.insert_loaded(
                name.clone(),
                Project::new(mode, Source::Config, tokens).with_quota(quota),
            ),
        }
    }
}

/// The disk side of the loaded projects: each durable project goes on appending to its journal.
/// (A project config.json now keeps in memory keeps its files as they are, unused.)
pub fn open_disk(
    cfg: &Config,
    store: &Store,
    files: Vec<(String, OnDisk)>,
    status: &mut Status,
) -> Result<Disk, String> {
    let mut disk = Disk::new(&cfg.data_dir, cfg.compaction_min_bytes);
    for (name, on) in files {
        let durable = store
            .project(&name)
            .is_some_and(|p| p.persistence() != Persistence::Memory);
        if durable {
            disk.adopt(&name, on, status)
                .map_err(|e| format!("cannot open the journal of project {name}: {e}"))?;
        }
    }
    Ok(disk)
}
