//! Where rsup keeps its state: `RSUP_HOME` (default `~/.rsup`).
//!
//! The directory is private to its user (0700) because it holds the control
//! socket, and whoever can reach the socket can start programs as that user.

use anyhow::{bail, Context, Result};
use rsup_proto::control::SOCKET_FILE;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
    /// The daemon's pid, locked for its lifetime (one daemon per folder).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("rsup.pid")
    }
    /// The daemon's pid again, where PM2 keeps it, for scripts and service
    /// units written for PM2 (`kill $(cat ~/.pm2/pm2.pid)`, `PIDFile=`).
    pub fn pm2_pid_file(&self) -> PathBuf {
        self.dir.join("pm2.pid")
    }
    /// The daemon's own log (its stderr).
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.join("rsup.log")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// The instances' pid files (PM2's `pids` folder).
    pub fn pids_dir(&self) -> PathBuf {
        self.dir.join("pids")
    }

    /// Creates the directories with private modes, and tightens them if they
    /// already exist with looser ones. Refuses a symbolic link (it could
    /// lead anywhere, such as a folder of root's that we would then make
    /// private and fill) and a directory owned by someone else: using it
    /// would hand them our control socket.
    pub fn ensure(&self) -> Result<()> {
        for dir in [self.dir.as_path(), &self.logs_dir()] {
            ensure_private_dir(dir)?;
        }
        Ok(())
    }

    /// What a client checks before it sends a daemon anything (its requests
    /// carry the caller's environment): the folder is a real directory,
    /// ours, and writable by no one else, so no one else can have put the
    /// socket there. Root may use another user's folder, to manage that
    /// user's daemon. Returns the folder's owner, the only uid besides root
    /// that a daemon serving it may run as; `None` when it does not exist
    /// (no daemon runs there).
    pub fn trusted_owner(&self) -> Result<Option<u32>> {
        let Some(meta) = real_dir(&self.dir)? else {
            return Ok(None);
        };
        let me = nix::unistd::geteuid();
        if !me.is_root() {
            check_owner(&self.dir, &meta)?;
        }
        if meta.mode() & 0o022 != 0 {
            bail!(
                "{} is writable by other users (mode {:o}); refusing to use it (chmod 700 it)",
                self.dir.display(),
                meta.mode() & 0o7777
            );
        }
        Ok(Some(meta.uid()))
    }
}

/// The directory's own metadata, without following a symbolic link;
/// `None` when nothing is there.
fn real_dir(dir: &Path) -> Result<Option<fs::Metadata>> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", dir.display())),
    };
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link; rsup does not follow links for its state folder (use the real path)",
            dir.display()
        );
    }
    if !meta.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    Ok(Some(meta))
}

fn check_owner(dir: &Path, meta: &fs::Metadata) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to this user (uid {me}); refusing to use it",
            dir.display(),
            meta.uid()
        );
    }
    Ok(())
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    if real_dir(dir)?.is_none() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // The checks and the chmod go through one descriptor opened without
    // following links, so a link swapped in after the checks above cannot
    // redirect the chmod to someone else's folder.
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                anyhow::anyhow!(
                    "{} is not a real directory; refusing to use it",
                    dir.display()
                )
            }
            _ => anyhow::Error::new(e).context(format!("opening {}", dir.display())),
        })?;
    let meta = handle.metadata()?;
    check_owner(dir, &meta)?;
    if meta.mode() & 0o077 != 0 {
        handle
            .set_permissions(fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
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

    #[test]
    fn refuses_a_symlink_and_leaves_its_target_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("someone-elses");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        let link = tmp.path().join("state");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let home = Home { dir: link.clone() };
        let err = home.ensure().unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(err.contains(&link.display().to_string()), "{err}");
        assert!(home.trusted_owner().is_err());
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
        assert!(!target.join("logs").exists());
    }

    #[test]
    fn a_client_trusts_only_a_folder_no_one_else_can_write() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home {
            dir: tmp.path().join("state"),
        };
        assert_eq!(home.trusted_owner().unwrap(), None);
        home.ensure().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(home.trusted_owner().unwrap(), Some(me));
        fs::set_permissions(&home.dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = home.trusted_owner().unwrap_err().to_string();
        assert!(err.contains("writable by other users"), "{err}");
    }
}
