//! `conf`, `config` and `unset`, PM2's commands for module settings, on
//! the settings rsup keeps (pm2-logrotate's), as PM2's
//! lib/API/Configuration.js answers them.

use crate::harness::*;

fn stored(r: &Rsup) -> serde_json::Value {
    let text = std::fs::read_to_string(r.home.path().join("module_conf.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fails_saying(r: &Rsup, args: &[&str], words: &str) {
    let out = r.run(args);
    assert_eq!(out.status.code(), Some(1), "rsup {args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.contains(words),
        "rsup {args:?}: {err}"
    );
}

#[test]
fn conf_shows_gets_and_sets_and_unset_puts_settings_back_to_their_defaults() {
    let r = Rsup::new();
    // Nothing kept yet: nothing shown.
    assert_eq!(r.ok(&["conf"]), "");

    // `conf <key> <value>` sets, `conf <key>` gets, `conf` shows each as
    // the line that sets it; `config` is PM2's other name.
    r.ok(&["conf", "pm2-logrotate:max_size", "1M"]);
    r.ok(&["config", "pm2-logrotate:retain", "5"]);
    assert_eq!(r.ok(&["conf", "pm2-logrotate:retain"]), "5\n");
    assert_eq!(
        r.ok(&["conf"]),
        "Module: pm2-logrotate\n$ rsup set pm2-logrotate:max_size 1M\n$ rsup set pm2-logrotate:retain 5\n"
    );
    assert!(r
        .ok(&["conf", "pm2-logrotate"])
        .starts_with("Module: pm2-logrotate\n$ rsup set pm2-logrotate:max_size 1M\n"));
    // A value rotation cannot use, a key not set, another module's key:
    // one line naming it, exit code 1.
    fails_saying(
        &r,
        &["conf", "pm2-logrotate:retain", "many"],
        "pm2-logrotate:retain",
    );
    fails_saying(
        &r,
        &["conf", "pm2-logrotate:compress"],
        "pm2-logrotate:compress is not set",
    );
    fails_saying(
        &r,
        &["conf", "pm2-server-monit:drive"],
        "pm2-server-monit:drive",
    );
    assert_eq!(stored(&r)["pm2-logrotate"]["retain"], "5");

    // With a daemon running (`list` starts one), which is told, as by `set`.
    r.ok(&["list"]);
    assert!(r.ok(&["ping"]).contains("is running"));
    // `unset` forgets one setting and shows what is left; forgetting one
    // that is not set is no error, as in PM2.
    assert_eq!(
        r.ok(&["unset", "pm2-logrotate:max_size"]),
        "Module: pm2-logrotate\n$ rsup set pm2-logrotate:retain 5\n"
    );
    assert_eq!(
        stored(&r),
        serde_json::json!({"pm2-logrotate": {"retain": "5"}})
    );
    r.ok(&["unset", "pm2-logrotate:max_size"]);
    fails_saying(
        &r,
        &["unset", "pm2-server-monit:drive"],
        "pm2-server-monit:drive",
    );
    // `all` (or the module) forgets every setting; rotation stays on, with
    // pm2-logrotate's defaults, until `uninstall`.
    assert_eq!(r.ok(&["unset", "all"]), "Module: pm2-logrotate\n");
    assert_eq!(stored(&r), serde_json::json!({"pm2-logrotate": {}}));
    r.ok(&["uninstall", "pm2-logrotate"]);
    assert_eq!(r.ok(&["unset", "pm2-logrotate"]), "");
    assert_eq!(stored(&r), serde_json::json!({}));
}
