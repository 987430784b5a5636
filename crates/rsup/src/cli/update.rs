//! `rsup update` (PM2's `update` and `updatePM2`): the running daemon
//! re-executes itself with this binary, in place (see the daemon's
//! `reexec` module): same pid, every process kept running. The answer
//! comes from the new image on the same connection, or from the old one,
//! which serves on, with why it did not.

use super::client::{connect_existing, send};
use super::commands::{list, print_table};
use crate::home::Home;
use anyhow::{bail, Context, Result};
use rsup_proto::control::{Reply, Request};
use std::io::{Read, Seek, SeekFrom};

pub fn update(home: &Home) -> Result<i32> {
    let Some(stream) = connect_existing(home)? else {
        println!(
            "rsup daemon is not running ({}): nothing to update",
            home.dir.display()
        );
        return Ok(0);
    };
    let (old_pid, old_version) = match send(stream, &Request::Ping, |_| {})? {
        Reply::Pong { pid, version } => (pid, version),
        Reply::Error { message } => bail!(message),
        _ => bail!("unexpected reply from the daemon"),
    };
    let exe = std::env::current_exe().context("finding this binary")?;
    println!(
        "[rsup] the daemon (pid {old_pid}, version {old_version}) re-executes itself as {} (version {})",
        exe.display(),
        env!("CARGO_PKG_VERSION")
    );
    let log_start = std::fs::metadata(home.daemon_log()).map_or(0, |m| m.len());
    let Some(stream) = connect_existing(home)? else {
        bail!("the daemon stopped before it could be updated");
    };
    match send(stream, &Request::ReExec { exe }, |m| println!("[rsup] {m}")) {
        Ok(Reply::Updated {
            pid,
            from,
            to,
            kept,
            started,
        }) => {
            println!(
                "rsup daemon updated in place: pid {pid}, version {from} -> {to}; {kept} process(es) kept running, {started} started"
            );
            print_table(&list(home)?);
            Ok(0)
        }
        Ok(Reply::Error { message }) if message.contains("unknown variant `re_exec`") => bail!(
            "the running daemon (version {old_version}) predates updates in place; restart it (rsup kill, then start the apps again)"
        ),
        Ok(Reply::Error { message }) => bail!(message),
        Ok(_) => bail!("unexpected reply from the daemon"),
        Err(e) => {
            let said = daemon_error(home, log_start)
                .map_or_else(String::new, |said| format!(": {said}"));
            bail!(
                "the daemon (pid {old_pid}) ended the update without an answer{said} ({e:#}); see {}",
                home.daemon_log().display()
            )
        }
    }
}

/// The last error the daemon logged since `log_start`.
fn daemon_error(home: &Home, log_start: u64) -> Option<String> {
    let mut file = std::fs::File::open(home.daemon_log()).ok()?;
    file.seek(SeekFrom::Start(log_start)).ok()?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("rsup: ")
                .or_else(|| l.split_once(" ERROR ").map(|(_, e)| e))
        })
        .map(str::to_string)
}
