//! `startup` and `unstartup`: a systemd unit that brings back, at boot, the
//! apps `rsup save` wrote for a user (PM2's `startup systemd`).
//!
//! The unit runs the daemon's keeper (which starts the daemon, and the
//! next should it crash, see `crate::keeper`) as `Type=notify`: systemd
//! hears, from the daemon (`NotifyAccess=all`), `READY=1` once the saved
//! apps are up, `RELOADING=1` during `systemctl reload` (a reload of every
//! app, no request dropped) and `STOPPING=1` on stop. `KillMode=mixed`
//! sends the stop signal to the keeper alone, which passes it to the
//! daemon, which stops each app with its own kill signal and timeout;
//! anything left when they exit is killed.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where units written as root go unless `--unit-dir` says otherwise.
pub const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// Everything the unit names.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub user: String,
    /// The user's state folder (`RSUP_HOME`).
    pub rsup_home: PathBuf,
    pub exe: PathBuf,
    /// `PATH` for the apps, so `node` is found as it was by the user.
    pub path: String,
}

impl Unit {
    pub fn service_name(&self) -> String {
        format!("rsup-{}.service", self.user)
    }

    pub fn render(&self) -> String {
        let exe = self.exe.display();
        format!(
            "# Written by `rsup startup`: at boot, the apps `rsup save` wrote for {user}.\n\
             [Unit]\n\
             Description=rsup process supervisor for {user}\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=notify\n\
             NotifyAccess=all\n\
             User={user}\n\
             Environment=\"RSUP_HOME={home}\"\n\
             Environment=\"PATH={path}\"\n\
             ExecStart=\"{exe}\" keeper --resurrect\n\
             ExecReload=\"{exe}\" reload all --if-any\n\
             KillMode=mixed\n\
             Restart=on-failure\n\
             RestartSec=2\n\
             LimitNOFILE=infinity\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            user = self.user,
            home = self.rsup_home.display(),
            path = self.path,
        )
    }
}

/// The unit for `user` (default: whoever runs this), whose home folder is
/// `user_home` (default: from the password database).
pub fn unit_for(user: Option<&str>, user_home: Option<&Path>) -> Result<Unit> {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())?
        .context("the current user is not in the password database")?;
    let name = user.unwrap_or(&me.name);
    let account =
        nix::unistd::User::from_name(name)?.with_context(|| format!("-u {name}: no such user"))?;
    let for_me = account.uid == me.uid;
    // Our own RSUP_HOME is the user's meaning when the unit is ours.
    let rsup_home = match (user_home, std::env::var_os("RSUP_HOME")) {
        (Some(home), _) => home.join(".rsup"),
        (None, Some(dir)) if for_me && !dir.is_empty() => crate::home::Home::from_env()?.dir,
        _ => account.dir.join(".rsup"),
    };
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("locating the rsup binary")?;
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    for (what, text) in [
        ("PATH", path.as_str()),
        ("the home folder", &rsup_home.to_string_lossy()),
        ("the rsup binary's path", &exe.to_string_lossy()),
    ] {
        // Values are quoted in the unit; these would still be read as
        // specifiers, escapes or variables.
        if text.contains(['\n', '%', '"', '\\', '$']) {
            bail!("{what} ({text}) holds characters a unit file cannot carry as they are");
        }
    }
    Ok(Unit {
        user: account.name,
        rsup_home,
        exe,
        path,
    })
}

/// Writes the unit into `dir` and, for the system folder, enables it.
pub fn install(unit: &Unit, dir: &Path) -> Result<PathBuf> {
    let system = dir == Path::new(SYSTEM_UNIT_DIR);
    if system && !nix::unistd::geteuid().is_root() {
        bail!(
            "writing to {SYSTEM_UNIT_DIR} needs root; run:\n  sudo env PATH=\"$PATH\" {} startup systemd -u {} --install",
            unit.exe.display(),
            unit.user
        );
    }
    let path = dir.join(unit.service_name());
    std::fs::write(&path, unit.render()).with_context(|| format!("writing {}", path.display()))?;
    if system {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", &unit.service_name()])?;
    }
    Ok(path)
}

/// Disables and removes the unit from `dir`.
pub fn uninstall(unit: &Unit, dir: &Path) -> Result<Option<PathBuf>> {
    let path = dir.join(unit.service_name());
    if !path.exists() {
        return Ok(None);
    }
    if dir == Path::new(SYSTEM_UNIT_DIR) {
        systemctl(&["disable", &unit.service_name()])?;
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(Some(path))
}

fn systemctl(args: &[&str]) -> Result<()> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .context("running systemctl (is this a systemd machine?)")?;
    if !status.success() {
        bail!("systemctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_daemon_as_a_notify_service_for_the_user() {
        let unit = Unit {
            user: "deploy".into(),
            rsup_home: "/home/deploy/.rsup".into(),
            exe: "/opt/app/node_modules/rsup/native/rsup".into(),
            path: "/usr/local/bin:/usr/bin".into(),
        };
        let text = unit.render();
        for line in [
            "Type=notify",
            "User=deploy",
            "Environment=\"RSUP_HOME=/home/deploy/.rsup\"",
            "ExecStart=\"/opt/app/node_modules/rsup/native/rsup\" keeper --resurrect",
            "ExecReload=\"/opt/app/node_modules/rsup/native/rsup\" reload all --if-any",
            "KillMode=mixed",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert_eq!(unit.service_name(), "rsup-deploy.service");
    }
}
