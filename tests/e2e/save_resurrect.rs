//! `save`/`dump` and `resurrect`: the apps come back after the daemon is
//! gone, each with its instances and options.

use crate::harness::*;
use rsup_proto::app::Status;
use std::os::unix::fs::PermissionsExt;

fn online_by_name(r: &Rsup) -> Vec<(String, u32)> {
    let mut seen: Vec<(String, u32)> = Vec::new();
    for p in r.jlist() {
        assert_eq!(p.status, Status::Online, "{} is {:?}", p.name, p.status);
        match seen.iter_mut().find(|(n, _)| *n == p.name) {
            Some((_, count)) => *count += 1,
            None => seen.push((p.name, 1)),
        }
    }
    seen.sort();
    seen
}

#[test]
fn resurrect_brings_back_what_save_wrote() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &["-i", "2"], &[("GREETING", "hi")]));
    assert_success(&r.start_fixture("app.js", "worker", &[], &[]));
    let out = r.ok(&["save"]);
    assert!(out.contains("saved 2 app(s)"), "{out}");
    let dump = r.home.path().join("dump.pm2");
    let mode = std::fs::metadata(&dump).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the dump holds environments");

    r.ok(&["kill"]);
    r.ok(&["resurrect"]);
    let expected = vec![("api".to_string(), 2), ("worker".to_string(), 1)];
    wait_for("the saved apps to be online", || {
        let procs = r.jlist();
        (procs.len() == 3 && procs.iter().all(|p| p.status == Status::Online)).then_some(())
    });
    assert_eq!(online_by_name(&r), expected);
    // The options came back too: the environment the app was started with
    // (inherited from the shell, so `env` shows it, not the lists).
    let env = r.ok(&["env", "api"]);
    assert!(env.lines().any(|l| l == "GREETING: hi"), "{env}");

    // What runs is not started twice.
    r.ok(&["resurrect"]);
    assert_eq!(online_by_name(&r), expected);
}

#[test]
fn an_empty_list_does_not_wipe_the_dump_unless_forced() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    r.ok(&["dump"]);
    r.ok(&["delete", "all"]);
    let out = r.ok(&["save"]);
    assert!(out.contains("no app runs"), "{out}");
    r.ok(&["resurrect"]);
    r.wait_status("api", Status::Online);

    r.ok(&["delete", "all"]);
    r.ok(&["save", "--force"]);
    r.ok(&["resurrect"]);
    assert!(r.jlist().is_empty());
}

#[test]
fn resurrect_without_a_dump_says_so() {
    let r = Rsup::new();
    let out = r.run(&["resurrect"]);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to resurrect"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
