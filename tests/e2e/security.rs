//! The control socket and state directory are private, and the daemon
//! refuses other users.

use crate::harness::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

const NOBODY: u32 = 65534;

#[test]
fn state_dir_and_socket_are_private() {
    let r = Rsup::new();
    r.ok(&["start", fixture("app.js").to_str().unwrap(), "--name", "m"]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(r.home.path()), 0o700);
    assert_eq!(mode(&r.home.path().join("logs")), 0o700);
    assert_eq!(mode(&r.home.path().join("rsup.sock")), 0o600);
    assert_eq!(mode(&r.home.path().join("rsup.pid")) & 0o077, 0);
}

#[test]
fn another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let r = Rsup::new();
    r.ok(&[
        "start",
        fixture("app.js").to_str().unwrap(),
        "--name",
        "mine",
    ]);
    let as_nobody = |args: &[&str]| {
        r.cmd()
            .args(args)
            .current_dir("/")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap()
    };

    // Their CLI refuses a folder that is not theirs before sending anything.
    let out = as_nobody(&["stop", "mine"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to uid 0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A client of their own, with the file modes opened up, meets the
    // daemon's own check.
    let sock = r.home.path().join("rsup.sock");
    std::fs::set_permissions(r.home.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("node")
        .args(["-e", RAW_CLIENT])
        .arg(&sock)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains(&format!("not uid {NOBODY}")),
        "{answer}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r.process("mine").status, rsup_proto::app::Status::Online);
    std::fs::set_permissions(r.home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Connects to the socket in argv[1] and prints what it is told: the
/// daemon answers a refused client at once, before any request.
const RAW_CLIENT: &str = r#"
    const c = require('net').connect(process.argv[1]);
    c.on('data', (d) => process.stdout.write(d));
    c.on('error', (e) => console.error(e.message));
"#;
