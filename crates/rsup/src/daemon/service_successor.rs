//! `rsup update` of a daemon that runs as a systemd service: systemd
//! follows a service by its cgroup and main pid, so a successor the CLI
//! started would run outside it. The daemon starts the successor itself,
//! as its own child (inside the service), accepts the hand-over from that
//! process only, and once it serves names it the service's main process
//! (`MAINPID=`, see [`super::systemd::main_pid`]) before exiting.

use crate::home::Home;
use std::path::Path;
use std::process::Stdio;

/// Starts `exe daemon --successor`, its output to the daemon's log;
/// returns its pid. It keeps `NOTIFY_SOCKET`, and its watchdog is its own
/// (`WATCHDOG_PID` names this daemon).
pub fn start(home: &Home, exe: &Path) -> Result<u32, String> {
    if !exe.is_absolute() {
        return Err(format!("{}: not an absolute path", exe.display()));
    }
    let log = super::lifecycle::open_daemon_log(home).map_err(|e| format!("{e:#}"))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["daemon", "--successor"])
        .env("RSUP_HOME", &home.dir)
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe; the successor leads a session
    // of its own, as a daemon the CLI starts does.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id().ok_or("the new daemon exited at once")?;
    // Reaped here if it ends while this daemon still runs.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(pid)
}
