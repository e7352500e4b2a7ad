//! The `pykv` command: parse arguments, load config and data, run the server. The only place
//! that exits the process: every start-up error is one line on stderr and exit status 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pykv::auth::{self, Source, Token};
use pykv::config::{self, Config};
use pykv::migrate::args::{EtcdCommand, ExportCommand};
use pykv::migrate::{self, MigrateError};
use pykv::persist::disk::OnDisk;
use pykv::persist::Disk;
use pykv::status::Status;
use pykv::store::{Persistence, Project, Quota, Store};
use pykv::{log, persist, server, signal};

const HELP: &str = "\
pykv — Simple PyKV, a small key-value server over HTTP

Usage:
  pykv [--config PATH]          serve (config: --config, else $PYKV_CONFIG, else ./config.json)
  pykv --check-config [PATH]    validate a config file and exit
  pykv --check-data [DIR]       check every snapshot and journal in a data directory
                                (default: the config's); changes nothing
  pykv repair --data-dir DIR [--project P]
                                cut each damaged journal at its last good record, keeping
                                a copy; run it with the server stopped
  pykv export --data-dir DIR [--project P] [--format jsonl|consul] [--prefix PFX]
                                print a project's keys (or all projects') from the snapshots
                                and journals: JSON lines for POST /v1/projects/P/import (jsonl,
                                the default), or the JSON that `consul kv import` reads (keys
                                PFX+project/key, default PFX pykv/)
  pykv migrate etcd --data-dir DIR --endpoints URL[,URL...] [--project P] [--prefix PFX]
                    [--user U --password-env VAR] [--dry-run]
                                write every live key into etcd through its v3 gateway as
                                PFX+project/key (default PFX /pykv/), content types under
                                PFX.meta/, TTLs as leases; verify the counts (exit 1 if they
                                differ); --dry-run writes nothing
  pykv migrate etcd --roles --data-dir DIR [--project P] [--prefix PFX] [--endpoints URLS]
                                print (never run) etcdctl commands giving each token's reach
                                to an etcd role and user; no secret is printed
  pykv token                    print a fresh random token (for config.json)
  pykv --help | --version

Environment:
  PYKV_CONFIG        config file path, when --config is not given
  PYKV_ADMIN_TOKEN   admin token, when config.json sets none

Exit status: 0 done, 2 a usage, data or connection error (one line on stderr), 1 a count
mismatch after pykv migrate etcd.
";

/// A failed command: its one stderr line and exit status (2 unless a command says otherwise).
struct Failure {
    status: u8,
    message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure { status: 2, message }
    }
}

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Failure {
        Failure {
            status: e.exit_status(),
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("pykv: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match strs.as_slice() {
        ["--help"] | ["-h"] => print!("{HELP}"),
        ["--version"] | ["-V"] => println!("pykv {}", env!("CARGO_PKG_VERSION")),
        ["token"] => {
            let t = auth::generate_secret().map_err(|e| format!("no randomness: {e}"))?;
            println!("{t}");
        }
        ["--check-config"] => check_config(&default_config_path())?,
        ["--check-config", path] => check_config(Path::new(path))?,
        ["--check-data"] => check_data(&load_config(&default_config_path())?.data_dir)?,
        ["--check-data", dir] => check_data(Path::new(dir))?,
        ["repair", "--data-dir", dir] => repair(Path::new(dir), None)?,
        ["repair", "--data-dir", dir, "--project", p]
        | ["repair", "--project", p, "--data-dir", dir] => repair(Path::new(dir), Some(p))?,
        ["export", rest @ ..] => export(rest)?,
        ["migrate", "etcd", rest @ ..] => migrate_etcd(rest)?,
        ["migrate", ..] => {
            return Err("pykv migrate: the one target is etcd; see pykv --help"
                .to_string()
                .into())
        }
        [] => serve(&default_config_path())?,
        ["--config", path] => serve(Path::new(path))?,
        _ => return Err(format!("unknown arguments {:?}; see pykv --help", args.join(" ")).into()),
    }
    Ok(())
}

fn default_config_path() -> PathBuf {
    std::env::var_os("PYKV_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config.json"))
}

fn load_config(path: &Path) -> Result<Config, String> {
    config::load(path).map_err(|e| format!("config error: {e}"))
}

fn check_config(path: &Path) -> Result<(), String> {
    load_config(path)?;
    println!("config OK: {}", path.display());
    Ok(())
}

fn export(args: &[&str]) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match migrate::args::export(args)? {
        ExportCommand::Jsonl { data_dir, project } => {
            persist::export_dir(&data_dir, project.as_deref(), &mut out)?
        }
        ExportCommand::Consul(opts) => migrate::consul::run(&opts, &mut out)?,
    }
    Ok(())
}

/// `pykv migrate etcd`: the report goes to stdout line by line (progress on a long run).
fn migrate_etcd(args: &[&str]) -> Result<(), Failure> {
    let command = migrate::args::migrate_etcd(args, |var| std::env::var(var).ok())?;
    let stdout = std::io::stdout();
    let mut out = std::io::LineWriter::new(stdout.lock());
    match command {
        EtcdCommand::Migrate(opts) => migrate::etcd::run(&opts, &mut out)?,
        EtcdCommand::Roles(opts) => migrate::roles::run(&opts, &mut out)?,
    }
    Ok(())
}

fn repair(dir: &Path, project: Option<&str>) -> Result<(), String> {
    for line in persist::repair(dir, project)? {
        println!("{line}");
    }
    Ok(())
}

fn check_data(dir: &Path) -> Result<(), String> {
    for line in persist::check_dir(dir)? {
        println!("{line}");
    }
    Ok(())
}

/// The admin token: config.json, else $PYKV_ADMIN_TOKEN, else `data_dir/admin.token`, created
/// (0600) on first start. Returns the token and where it came from (for the log; never the token).
fn admin_token(cfg: &Config) -> Result<(String, String), String> {
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
fn load_store(cfg: &Config) -> Result<(Store, Vec<(String, OnDisk)>), String> {
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
    Ok((store, files))
}

/// The disk side of the loaded projects: each durable project goes on appending to its journal.
/// (A project config.json now keeps in memory keeps its files as they are, unused.)
fn open_disk(
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

fn serve(config_path: &Path) -> Result<(), String> {
    let cfg = load_config(config_path)?;
    persist::prepare_dir(&cfg.data_dir)
        .map_err(|e| format!("data_dir {}: {e}", cfg.data_dir.display()))?;
    let (admin, admin_from) = admin_token(&cfg)?;
    let (store, files) = load_store(&cfg)?;
    let mut status = Status::default();
    let disk = open_disk(&cfg, &store, files, &mut status)?;
    let listener = mio::net::TcpListener::bind(cfg.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let wake = signal::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let srv = server::Server::new(&cfg, listener, wake, store, disk, status, admin)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    log::now(format_args!("admin token: {admin_from}"));
    log::now(format_args!(
        "pykv {} listening on {addr} config={} data_dir={} persistence={}",
        env!("CARGO_PKG_VERSION"),
        config_path.display(),
        cfg.data_dir.display(),
        cfg.persistence.as_str()
    ));
    srv.run().map_err(|e| format!("event loop failed: {e}"))
}
