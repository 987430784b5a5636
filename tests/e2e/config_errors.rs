//! Ecosystem files: PM2's format works, bad input fails with one clear line
//! and starts nothing.

use crate::harness::*;
use rsup_proto::app::Status;

fn write(r: &Rsup, name: &str, body: &str) -> String {
    let path = r.path(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn an_ecosystem_file_starts_its_apps_with_env_and_env_name() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let config = write(
        &r,
        "ecosystem.config.js",
        &format!(
            r#"module.exports = {{ apps: [{{
                name: "eco", script: {app:?}, instances: 2, exec_mode: "fork",
                env: {{ REPORT: {report:?}, GREETING: "dev" }},
                env_production: {{ GREETING: "prod" }},
                kill_timeout: 5000,
            }}] }};"#,
            app = app.to_str().unwrap(),
            report = r.path("report").to_str().unwrap()
        ),
    );
    r.ok(&["start", &config, "--env", "production"]);
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    for p in &procs {
        assert_eq!(p.status, Status::Online);
        assert_eq!(p.spec.env.get("GREETING").map(String::as_str), Some("prod"));
        assert_eq!(p.spec.kill_timeout_ms, 5000);
    }
}

#[test]
fn a_key_of_the_wrong_type_fails_naming_file_app_and_key() {
    let r = Rsup::new();
    let config = write(
        &r,
        "ecosystem.config.js",
        r#"module.exports = { apps: [{ name: "api", script: "app.js", instances: true }] };"#,
    );
    std::fs::write(r.path("app.js"), "").unwrap();
    let out = r.run(&["start", &config]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("instances"))
        .unwrap_or_default();
    assert!(line.contains("ecosystem.config.js"), "{err}");
    assert!(line.contains("api"), "{err}");
    // Nothing was started: not even a daemon.
    assert!(!r.home.path().join("rsup.sock").exists());
}

#[test]
fn a_file_that_does_not_evaluate_fails_clearly() {
    let r = Rsup::new();
    let config = write(&r, "ecosystem.config.js", "module.exports = { apps: [ }");
    let out = r.run(&["start", &config]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ecosystem.config.js"), "{err}");
    assert!(err.contains("SyntaxError"), "{err}");
}

#[test]
fn a_missing_script_fails_clearly() {
    let r = Rsup::new();
    let out = r.run(&["start", "no-such-app.js"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-app.js"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn an_unknown_key_is_a_warning_not_a_failure() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let config = write(
        &r,
        "apps.json",
        &format!(
            r#"{{ "apps": [{{ "name": "j", "script": {app:?}, "colour": "blue" }}] }}"#,
            app = app.to_str().unwrap()
        ),
    );
    let out = r.run(&["start", &config]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
    assert_eq!(r.process("j").status, Status::Online);
}

#[test]
fn starting_a_running_name_again_is_refused() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let app = app.to_str().unwrap();
    r.ok(&["start", app, "--name", "dup"]);
    let out = r.run(&["start", app, "--name", "dup"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert_eq!(r.jlist().len(), 1);
}

#[test]
fn node_args_on_the_command_line_honour_quotes() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let app = app.to_str().unwrap();
    let out = r.run(&["start", app, "--node-args", "--title 'a b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node-args: unterminated quote"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    r.ok(&[
        "start",
        app,
        "--name",
        "quoted",
        "--node-args",
        "--title 'a b'",
    ]);
    let p = r.wait_status("quoted", Status::Online);
    assert_eq!(p.spec.node_args, ["--title", "a b"]);
}

#[test]
fn several_node_instances_without_the_addon_are_refused_at_start() {
    let r = Rsup::new();
    // A preload with no addon beside it, as after a bare `cargo build`.
    let bare = r.path("bare");
    std::fs::create_dir(&bare).unwrap();
    let preload = bare.join("preload.js");
    std::fs::write(&preload, "").unwrap();
    let app = fixture("app.js");
    let out = r
        .cmd()
        .env("RSUP_PRELOAD", &preload)
        .env_remove("RSUP_NATIVE_BINDING")
        .args(["start", app.to_str().unwrap(), "--name", "api", "-i", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app \"api\": 2 instances of a Node app share their port through rsup's preload, and rsup's native addon is not built"),
        "{err}"
    );
    assert!(r.jlist().is_empty());
    // One instance needs no sharing.
    assert_success(&r.start_fixture("app.js", "one", &[], &[]));
    let out = r.run(&["scale", "one", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("native addon is not built"));
}

#[test]
fn an_environment_too_large_for_the_daemon_is_named_as_the_cause() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let config = write(
        &r,
        "big.config.js",
        &format!(
            "module.exports = {{ apps: [{{ name: 'big', script: {app:?}, env: {{ BIG: 'x'.repeat(5e6) }} }}] }};"
        ),
    );
    let out = r.run(&["start", &config]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "more than the 4 MiB the daemon accepts; the apps' environment makes up 5.0 MB of it"
        ),
        "{err}"
    );
}
