//! Trust boundaries: the CLI sends nothing to a daemon that is not the
//! caller's (or root's), rsup never follows a link planted in place of its
//! folder or log files, and app names cannot escape the logs folder.
//!
//! Most of these tests act as other users, so they need root; they are
//! skipped otherwise.

use crate::harness::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

const NOBODY: u32 = 65534;
/// Another unprivileged user, the attacker in these tests; no account is
/// needed to run as a uid.
const MALLORY: u32 = 4242;

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root to act as other users");
    }
    root
}

/// A folder everyone can reach, so other users can work under it.
fn shared_base() -> tempfile::TempDir {
    let base = tempfile::Builder::new().prefix("rsup-t").tempdir().unwrap();
    chmod(base.path(), 0o755);
    base
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// A folder owned by `uid` with `mode`.
fn dir_of(parent: &Path, name: &str, uid: u32, mode: u32) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    chown(&dir, uid);
    chmod(&dir, mode);
    dir
}

/// `rsup args` as `uid` with `RSUP_HOME=home` and a secret in its
/// environment.
fn rsup_as(uid: u32, home: &Path, args: &[&str]) -> Output {
    Command::new(RSUP)
        .args(args)
        .env("RSUP_HOME", home)
        .env("SECRET_TOKEN", "hunter2")
        .env("NO_COLOR", "1")
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure whose message is one line containing `expected`.
fn assert_refused(out: &Output, expected: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded; stderr: {err}");
    assert!(err.contains(expected), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// A fake daemon run as `uid`: it listens at `socket` (open to everyone,
/// as an attacker would make it) and appends whatever a client sends to
/// `received`, then hangs up.
struct FakeDaemon {
    child: Child,
    received: PathBuf,
}

impl FakeDaemon {
    fn start(uid: u32, socket: &Path, received: &Path) -> FakeDaemon {
        const SCRIPT: &str = r#"
            const fs = require('fs');
            const [sock, received] = process.argv.slice(1);
            require('net').createServer((c) => {
              c.on('data', (d) => { fs.appendFileSync(received, d); c.destroy(); });
            }).listen(sock, () => fs.chmodSync(sock, 0o777));
        "#;
        let child = Command::new("node")
            .args(["-e", SCRIPT])
            .arg(socket)
            .arg(received)
            .uid(uid)
            .gid(uid)
            .spawn()
            .unwrap();
        wait_for("the fake daemon to listen", || {
            let mode = std::fs::metadata(socket).ok()?.mode();
            (mode & 0o777 == 0o777).then_some(())
        });
        FakeDaemon {
            child,
            received: received.to_path_buf(),
        }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.received).unwrap_or_default()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops whatever daemon runs for `home` when dropped, so a failing test
/// (a daemon started where none should be) leaves nothing behind.
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(RSUP)
            .arg("kill")
            .env("RSUP_HOME", &self.0)
            .output();
    }
}

#[test]
fn a_client_sends_nothing_into_a_folder_of_another_user() {
    if !root() {
        return;
    }
    let base = shared_base();
    let evil = dir_of(base.path(), "evil", MALLORY, 0o755);
    let fake = FakeDaemon::start(MALLORY, &evil.join("rsup.sock"), &evil.join("received"));

    let out = rsup_as(
        NOBODY,
        &evil,
        &["start", "/bin/sleep", "--name", "s", "--", "60"],
    );
    assert_eq!(fake.received(), "", "the request reached the fake daemon");
    assert_refused(&out, &format!("belongs to uid {MALLORY}"));
    assert_refused(&out, &evil.display().to_string());
}

#[test]
fn a_client_sends_nothing_to_a_listener_that_is_not_the_folders_owner() {
    if !root() {
        return;
    }
    // Root may manage another user's daemon, so root's CLI accepts a
    // folder of nobody's; the process listening in it must then be
    // nobody's (or root's), not a third user's.
    let base = shared_base();
    let home = dir_of(base.path(), "home", NOBODY, 0o700);
    let staging = dir_of(base.path(), "staging", MALLORY, 0o755);
    let fake = FakeDaemon::start(MALLORY, &staging.join("l.sock"), &staging.join("received"));
    // A listening socket keeps its owner wherever its name moves.
    std::fs::rename(staging.join("l.sock"), home.join("rsup.sock")).unwrap();

    let out = rsup_as(
        0,
        &home,
        &["start", "/bin/sleep", "--name", "s", "--", "60"],
    );
    assert_eq!(fake.received(), "", "the request reached the fake daemon");
    assert_refused(&out, &format!("is served by uid {MALLORY}"));
}

#[test]
fn root_may_talk_to_a_users_own_daemon() {
    if !root() {
        return;
    }
    let base = shared_base();
    let parent = dir_of(base.path(), "p", NOBODY, 0o755);
    let home = parent.join("home");
    let _stop = KillOnDrop(home.clone());
    let out = rsup_as(NOBODY, &home, &["jlist"]);
    assert_success(&out);
    assert_success(&rsup_as(0, &home, &["ping"]));
    assert_success(&rsup_as(0, &home, &["kill"]));
}

#[test]
fn a_home_that_is_a_link_is_refused_and_its_target_left_alone() {
    if !root() {
        return;
    }
    let base = shared_base();
    let shared = dir_of(base.path(), "shared", 0, 0o1777);
    let victim = dir_of(base.path(), "victim", 0, 0o755);
    let link = shared.join("rsup-home");
    let _stop = KillOnDrop(victim.clone());
    let made = Command::new("ln")
        .arg("-s")
        .arg(&victim)
        .arg(&link)
        .uid(MALLORY)
        .gid(MALLORY)
        .status()
        .unwrap();
    assert!(made.success());

    for args in [
        &["start", "/bin/sleep", "--name", "s", "--", "60"][..],
        &["ping"],
    ] {
        let out = rsup_as(0, &link, args);
        assert_refused(&out, "is a symbolic link");
        assert_refused(&out, &link.display().to_string());
    }
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);

    // A real folder of another user's is refused too, and stays as it was.
    let theirs = dir_of(&shared, "theirs", MALLORY, 0o755);
    let out = rsup_as(
        0,
        &theirs,
        &["start", "/bin/sleep", "--name", "s", "--", "60"],
    );
    assert_refused(&out, &format!("belongs to uid {MALLORY}"));
    assert_eq!(std::fs::metadata(&theirs).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);
}

#[test]
fn an_app_name_cannot_leave_the_logs_folder_or_break_a_line() {
    let r = Rsup::new();
    let home = r.path("a/home");
    let _stop = KillOnDrop(home.clone());
    let app = fixture("app.js");
    let start = |name: &str| {
        r.cmd()
            .env("RSUP_HOME", &home)
            .args(["start", app.to_str().unwrap(), "--name", name])
            .output()
            .unwrap()
    };
    let out = start("../../etc");
    assert_refused(&out, "invalid app name \"../../etc\"");
    let out = start("a\nb");
    assert_refused(&out, "control characters");
    let out = start(&"x".repeat(10_000));
    assert_refused(&out, "at most 128 bytes");

    assert!(!r.path("a/etc-out.log").exists());
    let list = r
        .cmd()
        .env("RSUP_HOME", &home)
        .arg("jlist")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
    r.cmd()
        .env("RSUP_HOME", &home)
        .arg("kill")
        .output()
        .unwrap();
}

/// A root-only file that must never receive an app's output.
fn victim_file(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    std::fs::write(&victim, "secret\n").unwrap();
    chmod(&victim, 0o600);
    victim
}

/// Starts the fixture app as `name`, waits until the daemon either says
/// it refused `log` or wrote into `watched`, and returns the daemon's log.
fn start_and_watch(r: &Rsup, name: &str, log: &Path, watched: &Path) -> String {
    let before = std::fs::read(watched).unwrap();
    assert_success(&r.start_fixture("app.js", name, &[], &[]));
    r.wait_report("report", "start");
    let line = format!("cannot open {}", log.display());
    wait_for("a refusal or a write", || {
        let daemon_log = std::fs::read_to_string(r.home.path().join("rsup.log")).ok()?;
        (daemon_log.contains(&line) || std::fs::read(watched).unwrap() != before)
            .then_some(daemon_log)
    })
}

#[test]
fn a_link_planted_in_the_logs_folder_receives_nothing() {
    if !root() {
        return;
    }
    let r = Rsup::new();
    let victim = victim_file(r.work.path());
    let logs = r.home.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let link = logs.join("leak-out.log");
    std::os::unix::fs::symlink(&victim, &link).unwrap();

    let daemon_log = start_and_watch(&r, "leak", &link, &victim);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
    assert!(daemon_log.contains("symbolic link"), "{daemon_log}");
}

#[test]
fn a_log_file_of_another_user_receives_nothing() {
    if !root() {
        return;
    }
    let r = Rsup::new();
    let logs = r.home.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let theirs = logs.join("peek-out.log");
    std::fs::write(&theirs, "").unwrap();
    chown(&theirs, MALLORY);

    let daemon_log = start_and_watch(&r, "peek", &theirs, &theirs);
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "");
    assert!(
        daemon_log.contains(&format!("belongs to uid {MALLORY}")),
        "{daemon_log}"
    );
}

#[test]
fn start_refuses_an_output_file_planted_in_a_shared_folder() {
    if !root() {
        return;
    }
    let r = Rsup::new();
    let base = shared_base();
    let victim = victim_file(base.path());
    let shared = dir_of(base.path(), "shared", 0, 0o1777);
    let link = shared.join("app.log");
    let made = Command::new("ln")
        .arg("-s")
        .arg(&victim)
        .arg(&link)
        .uid(MALLORY)
        .gid(MALLORY)
        .status()
        .unwrap();
    assert!(made.success());
    let theirs = shared.join("their.log");
    std::fs::write(&theirs, "").unwrap();
    chown(&theirs, MALLORY);

    let out = r.start_fixture("app.js", "o", &["-o", link.to_str().unwrap()], &[]);
    assert_refused(
        &out,
        &format!("--output: {} is a symbolic link", link.display()),
    );
    let out = r.start_fixture("app.js", "e", &["-e", theirs.to_str().unwrap()], &[]);
    assert_refused(
        &out,
        &format!("--error: {} belongs to uid {MALLORY}", theirs.display()),
    );
    assert!(r.jlist().is_empty());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
}
