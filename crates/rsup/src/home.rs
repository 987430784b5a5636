//! Where rsup keeps its state: `RSUP_HOME` (default `~/.rsup`).
//!
//! The directory is private to its user (0700) because it holds the control
//! socket, and whoever can reach the socket can start programs as that user.

use anyhow::{bail, Context, Result};
use rsup_proto::control::SOCKET_FILE;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// `RSUP_HOME`, else `$HOME/.rsup`.
    pub fn from_env() -> Result<Home> {
        let dir = match std::env::var_os("RSUP_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => {
                let home = std::env::var_os("HOME")
                    .context("neither RSUP_HOME nor HOME is set; cannot locate rsup's state")?;
                PathBuf::from(home).join(".rsup")
            }
        };
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()?.join(dir)
        };
        Ok(Home { dir })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_FILE)
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("rsup.pid")
    }
    /// The daemon's own log (its stderr).
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.join("rsup.log")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Creates the directories with private modes, and tightens them if they
    /// already exist with looser ones. Refuses a directory owned by someone
    /// else: using it would hand them our control socket.
    pub fn ensure(&self) -> Result<()> {
        for dir in [self.dir.as_path(), &self.logs_dir()] {
            ensure_private_dir(dir)?;
        }
        Ok(())
    }
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                bail!("{} exists and is not a directory", dir.display());
            }
            let me = nix::unistd::geteuid().as_raw();
            if meta.uid() != me {
                bail!(
                    "{} belongs to uid {}, not to this user (uid {me}); refusing to use it",
                    dir.display(),
                    meta.uid()
                );
            }
            if meta.mode() & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("making {} private", dir.display()))?;
            }
        }
        Err(_) => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_dirs_and_tightens_loose_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home {
            dir: tmp.path().join("state"),
        };
        home.ensure().unwrap();
        let mode = fs::metadata(&home.dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::set_permissions(&home.dir, fs::Permissions::from_mode(0o755)).unwrap();
        home.ensure().unwrap();
        assert_eq!(fs::metadata(&home.dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(home.logs_dir()).unwrap().mode() & 0o777, 0o700);
    }
}
