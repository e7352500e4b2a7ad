//! `pykv export --format consul`: the live keys of a data directory as the JSON array that
//! `consul kv export` writes and `consul kv import` reads — `{"key", "flags", "value"}` per key,
//! the value in standard base64 — one entry per line, streamed. Keys are named as in etcd
//! (`PFX` + project + `/` + key, content types under `PFX` + `.meta/`); expiries do not carry
//! over (Consul's KV store has none per key). Reads only through `persist::read_dir`.

use std::io::Write;
use std::path::PathBuf;

use super::{is_live, unix_now, MigrateError, Naming};
use crate::base64;
use crate::persist;

#[derive(Debug)]
pub struct Options {
    pub data_dir: PathBuf,
    pub project: Option<String>,
    pub naming: Naming,
}

pub fn run(opts: &Options, out: &mut dyn Write) -> Result<(), MigrateError> {
    let projects =
        persist::read_dir(&opts.data_dir, opts.project.as_deref()).map_err(MigrateError::Data)?;
    let now = unix_now();
    out.write_all(b"[")?;
    let mut first = true;
    for l in &projects {
        let live = || {
            l.project
                .entries()
                .filter(|(_, v)| is_live(v.expires_at, now))
        };
        for (key, v) in live() {
            entry(out, &mut first, &opts.naming.key(&l.name, key), v.data)?;
        }
        for (key, v) in live() {
            if let Some(ct) = v.content_type {
                entry(
                    out,
                    &mut first,
                    &opts.naming.meta_key(&l.name, key),
                    ct.as_bytes(),
                )?;
            }
        }
    }
    out.write_all(b"\n]\n")?;
    out.flush()?;
    Ok(())
}

/// One `{"key","flags","value"}` line (`flags` is Consul's opaque number; pykv has none).
fn entry(out: &mut dyn Write, first: &mut bool, key: &str, value: &[u8]) -> std::io::Result<()> {
    out.write_all(if *first { b"\n" } else { b",\n" })?;
    *first = false;
    out.write_all(b"{\"key\":")?;
    serde_json::to_writer(&mut *out, key)?;
    write!(
        out,
        ",\"flags\":0,\"value\":\"{}\"}}",
        base64::encode(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_comma_separated_lines() {
        let mut out = Vec::new();
        let mut first = true;
        entry(&mut out, &mut first, "pykv/p/a \"q\"", b"hi").expect("write");
        entry(&mut out, &mut first, "pykv/p/b", &[0, 255]).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "\n{\"key\":\"pykv/p/a \\\"q\\\"\",\"flags\":0,\"value\":\"aGk=\"},\n\
             {\"key\":\"pykv/p/b\",\"flags\":0,\"value\":\"AP8=\"}"
        );
    }
}
