//! The `pykv` command: parse arguments, load config and data, run the server. The only place
//! that exits the process: every start-up error is one line on stderr and exit status 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pykv::auth;
use pykv::config::{self, Config};
use pykv::migrate::args::{EtcdCommand, ExportCommand};
use pykv::migrate::{self, MigrateError};
use pykv::status::Status;
use pykv::{boot, log, persist, server, signal};

const HELP: &str = "\
pykv — Simple PyKV, a small key-value server over HTTP

Usage:
  pykv [--config PATH]          serve (config: --config, else $PYKV_CONFIG, else ./config.json,
                                else the etc/pykv/config.json install.sh wrote for this binary)
  pykv --check-config [PATH]    validate a config file (default: the one serving would use)
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
        ["--check-config"] => check_config(&find_config(None)?)?,
        ["--check-config", path] => check_config(Path::new(path))?,
        ["--check-data"] => check_data(&load_config(&find_config(None)?)?.data_dir)?,
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
        [] => serve(&find_config(None)?)?,
        ["--config", path] => serve(&find_config(Some(Path::new(path)))?)?,
        _ => return Err(format!("unknown arguments {:?}; see pykv --help", args.join(" ")).into()),
    }
    Ok(())
}

/// The config file: `--config`, $PYKV_CONFIG, ./config.json, then the installed one.
fn find_config(flag: Option<&Path>) -> Result<PathBuf, String> {
    let env = std::env::var_os("PYKV_CONFIG").map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    config::find(flag, env, exe.as_deref()).map_err(|e| format!("config error: {e}"))
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
    let mut out = ClosedPipe {
        inner: std::io::BufWriter::new(stdout.lock()),
        closed: false,
    };
    let done = match migrate::args::export(args)? {
        ExportCommand::Jsonl { data_dir, project } => {
            persist::export_dir(&data_dir, project.as_deref(), &mut out).map_err(Failure::from)
        }
        ExportCommand::Consul(opts) => migrate::consul::run(&opts, &mut out).map_err(Failure::from),
    };
    // `pykv export … | head`: the reader has all it wanted; stop quietly, as cat does.
    if out.closed {
        return Ok(());
    }
    done
}

/// A writer that notes when the reader went away (EPIPE: Rust ignores SIGPIPE), so that a
/// closed pipe ends a command quietly instead of as an error.
struct ClosedPipe<W> {
    inner: W,
    closed: bool,
}

impl<W: std::io::Write> ClosedPipe<W> {
    fn note<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if r.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            self.closed = true;
        }
        r
    }
}

impl<W: std::io::Write> std::io::Write for ClosedPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
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

fn serve(config_path: &Path) -> Result<(), String> {
    let cfg = load_config(config_path)?;
    persist::prepare_dir(&cfg.data_dir)?;
    let (admin, admin_from) = boot::admin_token(&cfg)?;
    let (store, files) = boot::load_store(&cfg)?;
    let mut status = Status::default();
    let disk = boot::open_disk(&cfg, &store, files, &mut status)?;
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
        "pykv {} listening on {} config={} data_dir={} persistence={}",
        env!("CARGO_PKG_VERSION"),
        config::listen::describe(addr),
        config_path.display(),
        cfg.data_dir.display(),
        cfg.persistence.as_str()
    ));
    srv.run().map_err(|e| format!("event loop failed: {e}"))
}
