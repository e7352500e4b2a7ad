//! Where the config file is: `--config`, else `$PYKV_CONFIG`, else `./config.json`, else the
//! `etc/pykv/config.json` install.sh wrote for the prefix the running binary was installed under
//! (so an installed `pykv` runs from any directory). Only looks whether files exist.

use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// The config file to read: `flag` (`--config`) and `env` (`$PYKV_CONFIG`) are taken as given,
/// even when missing (reading it then says so); the other places only when the file is there.
/// `exe` is the running binary.
pub fn find(
    flag: Option<&Path>,
    env: Option<PathBuf>,
    exe: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p);
    }
    let mut looked = vec!["./config.json".to_string()];
    let here = PathBuf::from("config.json");
    if here.is_file() {
        return Ok(here);
    }
    if let Some(installed) = exe.and_then(installed_config) {
        if installed.is_file() {
            return Ok(installed);
        }
        looked.push(installed.display().to_string());
    }
    Err(ConfigError::NotFound { looked })
}

/// The config install.sh writes for a binary at `PREFIX/bin/pykv`: `/etc/pykv/config.json` for
/// the prefixes /usr/local and /usr, else `PREFIX/etc/pykv/config.json`. None for a binary not in
/// a `bin` directory (`target/release/pykv`).
pub fn installed_config(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let prefix = bin.parent()?;
    let etc = if prefix == Path::new("/usr/local") || prefix == Path::new("/usr") {
        PathBuf::from("/etc")
    } else {
        prefix.join("etc")
    };
    Some(etc.join("pykv").join("config.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_config_follows_install_sh() {
        let at = |exe: &str| installed_config(Path::new(exe));
        assert_eq!(
            at("/usr/local/bin/pykv"),
            Some(PathBuf::from("/etc/pykv/config.json"))
        );
        assert_eq!(
            at("/usr/bin/pykv"),
            Some(PathBuf::from("/etc/pykv/config.json"))
        );
        assert_eq!(
            at("/home/pi/.local/bin/pykv"),
            Some(PathBuf::from("/home/pi/.local/etc/pykv/config.json"))
        );
        assert_eq!(at("/work/pykv/target/release/pykv"), None);
    }

    #[test]
    fn the_flag_and_the_variable_come_first_even_when_missing() {
        let flag = Path::new("/nonexistent/a.json");
        assert_eq!(
            find(Some(flag), Some("/b.json".into()), None).unwrap(),
            flag
        );
        assert_eq!(
            find(None, Some("/b.json".into()), None).unwrap(),
            Path::new("/b.json")
        );
    }
}
