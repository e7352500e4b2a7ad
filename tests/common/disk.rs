//! Make the server's writes fail from outside, and work again, to test what it does then:
//! - as root, a 1 MiB tmpfs mounted on the data directory and filled (ENOSPC: 507 storage_full);
//! - as root where mounting is refused, `chattr +i` on the directory and its files (EPERM:
//!   500 storage_error, even for a journal the server holds open);
//! - as any other user, `prlimit --fsize=1` on the server process (EFBIG: 507 storage_full).
//!
//! A tmpfs fails an append only when it needs a new page: `align_journal` fills the journal's
//! last page first, so the next append needs one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Api, Server};

const FILLER: &str = "filler.bin";

pub enum Disk {
    Tmpfs(PathBuf),
    Immutable(PathBuf),
    SizeLimit,
}

fn chattr(flag: &str, p: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(p)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Disk {
    /// Prepare `data` before the server starts.
    pub fn prepare(data: &Path) -> Disk {
        std::fs::create_dir_all(data).unwrap();
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            println!("disk failures: prlimit --fsize (not root)");
            return Disk::SizeLimit;
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
            .arg(data)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            println!("disk failures: a full 1 MiB tmpfs");
            return Disk::Tmpfs(data.to_path_buf());
        }
        println!("disk failures: chattr +i (tmpfs mount not permitted)");
        Disk::Immutable(data.to_path_buf())
    }

    /// From now on, writes that need space fail.
    pub fn break_writes(&self, srv: &Server) {
        match self {
            Disk::Tmpfs(dir) => {
                let mut f = std::fs::File::create(dir.join(FILLER)).unwrap();
                let chunk = vec![0xa5u8; 64 * 1024];
                loop {
                    match f.write(&chunk) {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                        Err(e) => panic!("filling the tmpfs: {e}"),
                    }
                }
            }
            Disk::Immutable(dir) => {
                for entry in std::fs::read_dir(dir).unwrap() {
                    assert!(chattr("+i", &entry.unwrap().path()));
                }
                assert!(chattr("+i", dir));
            }
            Disk::SizeLimit => prlimit(srv, "1"),
        }
    }

    /// Writes work again.
    pub fn repair(&self, srv: &Server) {
        match self {
            Disk::Tmpfs(dir) => std::fs::remove_file(dir.join(FILLER)).unwrap(),
            Disk::Immutable(dir) => {
                assert!(chattr("-i", dir));
                for entry in std::fs::read_dir(dir).unwrap() {
                    chattr("-i", &entry.unwrap().path());
                }
            }
            Disk::SizeLimit => prlimit(srv, "unlimited"),
        }
    }

    /// The answer to a write that cannot be saved.
    pub fn expected_error(&self) -> (u16, &'static str) {
        match self {
            Disk::Tmpfs(_) | Disk::SizeLimit => (507, "storage_full"),
            Disk::Immutable(_) => (500, "storage_error"),
        }
    }

    /// Whether small writes into space a file already has still work (tmpfs): then tests first
    /// `align_journal` so that the next append needs new space.
    pub fn fails_only_when_growing(&self) -> bool {
        matches!(self, Disk::Tmpfs(_))
    }
}

fn prlimit(srv: &Server, size: &str) {
    let ok = Command::new("prlimit")
        .arg("--pid")
        .arg(srv.pid().to_string())
        .arg(format!("--fsize={size}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "prlimit --fsize={size} failed");
}

impl Drop for Disk {
    fn drop(&mut self) {
        match self {
            Disk::Tmpfs(dir) => {
                let ok = Command::new("umount")
                    .arg(&*dir)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    let _ = Command::new("umount").arg("-l").arg(&*dir).status();
                }
            }
            Disk::Immutable(dir) => {
                chattr("-i", dir);
                if let Ok(entries) = std::fs::read_dir(&*dir) {
                    for entry in entries.flatten() {
                        chattr("-i", &entry.path());
                    }
                }
            }
            Disk::SizeLimit => {}
        }
    }
}

/// The journal segment `project` appends to now (the highest-numbered one).
pub fn current_journal(data: &Path, project: &str) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(seq) = name
            .strip_prefix(&format!("{project}."))
            .and_then(|r| r.strip_suffix(".journal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(s, _)| seq > *s) {
            best = Some((seq, path));
        }
    }
    best.unwrap_or_else(|| panic!("no journal of {project} in {}", data.display()))
        .1
}

/// PUT key `pad` with a value sized so that the journal of `project` ends on a page boundary:
/// on a full tmpfs the next append then needs a page it cannot get.
pub fn align_journal(srv: &Server, token: &str, project: &str) {
    let journal = current_journal(&srv.data_dir(), project);
    let len = std::fs::metadata(&journal).unwrap().len() as usize;
    // A one-key record: 12 framing + 1 kind + 8 version + 1 op + 4 length + 15 record header.
    let overhead = 41 + "pad".len();
    let value = (4096 - (len + overhead) % 4096) % 4096;
    let r = srv.req(
        "PUT",
        &format!("/v1/kv/{project}/pad"),
        Some(token),
        &vec![b'.'; value],
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let after = std::fs::metadata(&journal).unwrap().len();
    assert_eq!(
        after % 4096,
        0,
        "the journal did not end on a page boundary"
    );
}
