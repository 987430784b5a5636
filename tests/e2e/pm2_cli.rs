//! PM2's command line as its users type it: several scripts and targets in
//! one call, `-f`, `start -`, config files and scripts as targets,
//! restart options, the environment, `-x`, exit codes, and the words for
//! what rsup does not have.

use crate::harness::*;
use rsup_proto::app::{ExecMode, ProcessInfo, Status};
use std::io::Write;
use std::process::{Output, Stdio};

/// A Node script in the test's folder that appends one line to
/// `$REPORT` when it starts (its name, `$VAR`, its interpreter arguments,
/// and restart count) and then runs until stopped.
fn script(r: &Rsup, file: &str) -> String {
    let path = r.path(file);
    std::fs::write(
        &path,
        "const fs = require('fs');\n\
         fs.appendFileSync(process.env.REPORT, `start ${process.env.name} VAR=${process.env.VAR} \
         args=${process.execArgv.filter(a => !a.includes('preload')).filter(a => a !== '-r').join(',')} \
         restart_time=${process.env.restart_time}\\n`);\n\
         process.on('SIGINT', () => process.exit(0));\n\
         setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn run_env(r: &Rsup, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = r.cmd();
    cmd.args(args).env("REPORT", r.path("report"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("rsup runs")
}

fn ok_env(r: &Rsup, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_env(r, args, env);
    assert_success(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn with_stdin(r: &Rsup, args: &[&str], input: &str) -> Output {
    let mut child = r
        .cmd()
        .args(args)
        .env("REPORT", r.path("report"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn summary(procs: &[ProcessInfo]) -> Vec<(String, Status, u32)> {
    procs
        .iter()
        .map(|p| (p.name.clone(), p.status, p.restarts))
        .collect()
}

fn row(name: &str, status: Status, restarts: u32) -> (String, Status, u32) {
    (name.to_string(), status, restarts)
}

/// The lines of the report that `name`'s processes wrote.
fn starts_of(r: &Rsup, name: &str) -> Vec<String> {
    r.report("report")
        .into_iter()
        .filter(|l| l.starts_with(&format!("start {name} ")))
        .collect()
}

#[test]
fn several_scripts_start_in_one_call_and_several_targets_act_in_one() {
    let r = Rsup::new();
    let (a, b) = (script(&r, "a.js"), script(&r, "b.js"));
    ok_env(&r, &["start", &a, &b], &[]);
    assert_eq!(
        summary(&r.jlist()),
        [row("a", Status::Online, 0), row("b", Status::Online, 0)]
    );
    r.ok(&["restart", "a", "b"]);
    assert_eq!(
        summary(&r.jlist()),
        [row("a", Status::Online, 1), row("b", Status::Online, 1)]
    );
    // The first target that names nothing ends it, as in PM2: "b" is not
    // reached, and the command fails.
    let out = r.run(&["stop", "a", "nope", "b"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found: nope"), "{}", stderr(&out));
    assert_eq!(
        summary(&r.jlist()),
        [row("a", Status::Stopped, 1), row("b", Status::Online, 1)]
    );
    r.ok(&["delete", "0", "b"]);
    assert!(r.jlist().is_empty());
    // With no process left, ids start again at 0, as PM2's do.
    ok_env(&r, &["start", &b], &[]);
    assert_eq!(r.process("b").id, 0);
    r.ok(&["delete", "all"]);
    // --name names one app: with several scripts it is refused up front.
    let out = r.run(&["start", &a, &b, "--name", "x"]);
    assert!(
        stderr(&out).contains("--name names one app"),
        "{}",
        stderr(&out)
    );
    assert!(r.jlist().is_empty());
}

#[test]
fn a_running_script_starts_again_only_with_force_and_a_stopped_one_restarts() {
    let r = Rsup::new();
    let echo = script(&r, "echo.js");
    ok_env(&r, &["start", &echo], &[]);
    let out = run_env(&r, &["start", &echo], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("\"echo\" is already running") && err.contains("add -f"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(r.jlist().len(), 1);

    // -f starts another process of it, under the same name.
    ok_env(&r, &["start", &echo, "-f", "-i", "2"], &[]);
    let procs = r.jlist();
    assert_eq!(
        summary(&procs),
        [
            row("echo", Status::Online, 0),
            row("echo", Status::Online, 0),
            row("echo", Status::Online, 0)
        ]
    );
    assert_eq!(procs[0].spec.exec_mode, ExecMode::Fork);
    assert_eq!(procs[2].spec.exec_mode, ExecMode::Cluster);
    r.ok(&["stop", "echo"]);
    assert!(r.jlist().iter().all(|p| p.status == Status::Stopped));

    // Stopped: the same script starts it again (PM2's smart start; a
    // stopped process that starts again is not counted as restarted).
    ok_env(&r, &["start", &echo], &[]);
    assert!(r
        .jlist()
        .iter()
        .all(|p| p.status == Status::Online && p.restarts == 0));
    // Another script cannot take the name without -f.
    let other = script(&r, "other.js");
    let out = run_env(&r, &["start", &other, "--name", "echo"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("(script "), "{}", stderr(&out));
}

#[test]
fn start_of_a_name_or_an_id_starts_it_again() {
    let r = Rsup::new();
    let echo = script(&r, "echo.js");
    ok_env(&r, &["start", &echo], &[]);
    r.ok(&["stop", "echo"]);
    r.ok(&["start", "echo"]);
    assert_eq!(summary(&r.jlist()), [row("echo", Status::Online, 0)]);
    r.ok(&["start", "echo"]);
    assert_eq!(summary(&r.jlist()), [row("echo", Status::Online, 1)]);
    r.ok(&["start", "0"]);
    assert_eq!(summary(&r.jlist()), [row("echo", Status::Online, 2)]);
    // With the options a restart can change.
    r.ok(&[
        "start",
        "0",
        "--name",
        "renamed",
        "--node-args",
        "--no-warnings",
    ]);
    let p = r.process("renamed");
    assert_eq!((p.id, p.restarts), (0, 3));
    assert_eq!(p.spec.node_args, ["--no-warnings"]);
}

#[test]
fn apps_piped_on_stdin_start_and_go() {
    let r = Rsup::new();
    let (a, b) = (script(&r, "a.js"), script(&r, "b.js"));
    let apps = format!(
        r#"[{{ "name": "p1", "script": {a:?} }}, {{ "name": "p2", "script": {b:?}, "instances": 2 }}]"#
    );
    let out = with_stdin(&r, &["start", "-"], &apps);
    assert_success(&out);
    assert_eq!(r.jlist().len(), 3);
    // Again: PM2 restarts what runs.
    assert_success(&with_stdin(&r, &["start", "-"], &apps));
    assert!(r.jlist().iter().all(|p| p.restarts == 1));
    // One app object works too, and so does JavaScript notation.
    assert_success(&with_stdin(
        &r,
        &["stop", "-"],
        "{ name: 'p1', script: 'gone.js' }",
    ));
    assert_eq!(r.process("p1").status, Status::Stopped);
    assert_success(&with_stdin(&r, &["delete", "-"], &apps));
    assert!(r.jlist().is_empty());

    let out = with_stdin(&r, &["start", "-"], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was read from stdin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_file_as_the_target_acts_on_its_apps() {
    let r = Rsup::new();
    let (a, b) = (script(&r, "a.js"), script(&r, "b.js"));
    let config = r.path("apps.json");
    std::fs::write(
        &config,
        format!(r#"[{{ "name": "one", "script": {a:?} }}, {{ "name": "two", "script": {b:?}, "instances": 2 }}]"#),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // Restart and reload start what does not run.
    ok_env(&r, &["restart", config, "--only", "two"], &[]);
    assert_eq!(
        summary(&r.jlist()),
        [row("two", Status::Online, 0), row("two", Status::Online, 0)]
    );
    ok_env(&r, &["reload", config], &[]);
    assert_eq!(
        summary(&r.jlist()),
        [
            row("two", Status::Online, 1),
            row("two", Status::Online, 1),
            row("one", Status::Online, 0)
        ]
    );
    // start of the file restarts what runs.
    ok_env(&r, &["start", config], &[]);
    assert!(r.jlist().iter().all(|p| p.status == Status::Online));
    assert_eq!(r.process("one").restarts, 1);
    r.ok(&["stop", config]);
    assert!(r.jlist().iter().all(|p| p.status == Status::Stopped));
    r.ok(&["delete", config, "--only", "one"]);
    assert_eq!(r.jlist().len(), 2);
    // Apps of the file that do not run are passed over.
    r.ok(&["delete", config]);
    assert!(r.jlist().is_empty());
    let out = r.run(&["restart", "one", "--env", "production"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--env production applies to config files"));
}

#[test]
fn a_script_as_the_target_names_the_processes_running_it() {
    let r = Rsup::new();
    let echo = script(&r, "echo.js");
    ok_env(&r, &["start", &echo, "--name", "first"], &[]);
    ok_env(&r, &["start", &echo, "--name", "second"], &[]);
    let other = script(&r, "other.js");
    ok_env(&r, &["start", &other], &[]);
    // Relative to where the command runs, as PM2 resolves it.
    r.ok(&["stop", "echo.js"]);
    assert_eq!(
        summary(&r.jlist()),
        [
            row("first", Status::Stopped, 0),
            row("second", Status::Stopped, 0),
            row("other", Status::Online, 0)
        ]
    );
    r.ok(&["restart", "./echo.js", "--node-args", "--no-warnings"]);
    for name in ["first", "second"] {
        let p = r.process(name);
        assert_eq!(p.status, Status::Online);
        assert_eq!(p.spec.node_args, ["--no-warnings"]);
    }
    wait_for("the restarted processes' interpreter arguments", || {
        (starts_of(&r, "first")
            .last()?
            .contains("args=--no-warnings "))
        .then_some(())
    });
    r.ok(&["delete", &echo]);
    assert_eq!(summary(&r.jlist()), [row("other", Status::Online, 0)]);
    let out = r.run(&["stop", "./missing.js"]);
    assert!(!out.status.success());
}

#[test]
fn restart_and_reload_apply_a_new_name_and_node_args() {
    let r = Rsup::new();
    let echo = script(&r, "echo.js");
    ok_env(&r, &["start", &echo, "-i", "2"], &[]);
    r.ok(&["reload", "echo", "--node-args=--no-warnings"]);
    assert!(r
        .jlist()
        .iter()
        .all(|p| p.spec.node_args == ["--no-warnings"] && p.restarts == 1));
    assert!(r
        .ok(&["prettylist"])
        .contains("node_args: [ '--no-warnings' ]"));
    r.ok(&["reload", "echo", "--node-args=null"]);
    assert!(r.jlist().iter().all(|p| p.spec.node_args.is_empty()));
    // Removed, as PM2 removes an option given as null: not even listed.
    assert!(!r.ok(&["prettylist"]).contains("node_args"));

    // A new name is the app's: every instance takes it, ids stay.
    r.ok(&["restart", "0", "--name", "api"]);
    let procs = r.jlist();
    assert_eq!(
        procs
            .iter()
            .map(|p| (p.id, p.name.as_str()))
            .collect::<Vec<_>>(),
        [(0, "api"), (1, "api")]
    );
    wait_for("the processes to know their new name", || {
        (starts_of(&r, "api").len() == 2).then_some(())
    });
    // The old name is free, the new one taken.
    ok_env(&r, &["start", &echo], &[]);
    let out = r.run(&["restart", "echo", "--name", "api"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("an app of that name exists"),
        "{}",
        stderr(&out)
    );
    let out = r.run(&["restart", "all", "--name", "x"]);
    assert!(stderr(&out).contains("names 2 apps"), "{}", stderr(&out));
}

#[test]
fn restart_keeps_the_environment_it_started_with_unless_update_env() {
    let r = Rsup::new();
    let app = script(&r, "env.js");
    ok_env(
        &r,
        &["start", &app, "--name", "env"],
        &[("VAR", "first"), ("ONLY_AT_START", "1")],
    );
    r.wait_report("report", "start env VAR=first");
    ok_env(&r, &["restart", "env"], &[("VAR", "second")]);
    wait_for("a restart", || {
        (starts_of(&r, "env").len() == 2).then_some(())
    });
    assert!(starts_of(&r, "env")[1].contains("VAR=first"));
    assert!(r.ok(&["env", "env"]).contains("ONLY_AT_START: 1"));
    // The shell's environment replaces the one the app started with.
    ok_env(&r, &["restart", "env", "--update-env"], &[("VAR", "third")]);
    r.wait_report("report", "start env VAR=third");
    assert!(!r.ok(&["env", "env"]).contains("ONLY_AT_START"));
    ok_env(&r, &["reload", "env", "-a"], &[("VAR", "fourth")]);
    r.wait_report("report", "start env VAR=fourth");
    ok_env(&r, &["reload", "env"], &[("VAR", "fifth")]);
    wait_for("a reload", || {
        (starts_of(&r, "env").len() == 5).then_some(())
    });
    assert!(starts_of(&r, "env")[4].contains("VAR=fourth"));

    // Lists leave the inherited environment out; `env` shows it.
    for list in ["jlist", "prettylist"] {
        let shown = r.ok(&[list]);
        assert!(!shown.contains("fourth"), "{list}: {shown}");
    }
    assert!(r.process("env").spec.inherited_env.is_empty());
    let shown = r.ok(&["env", "0"]);
    assert!(shown.lines().any(|l| l == "VAR: fourth"), "{shown}");
    assert!(shown.lines().any(|l| l == "pm_id: 0"), "{shown}");
    let described = r.ok(&["info", "env"]);
    assert!(!described.contains("fourth"), "{described}");
}

#[test]
fn env_name_reads_env_and_deploy_env_and_can_name_the_app() {
    let r = Rsup::new();
    let app = script(&r, "env.js");
    let config = r.path("eco.json");
    std::fs::write(
        &config,
        format!(
            r#"{{ "apps": [{{ "name": "web", "script": {app:?}, "append_env_to_name": true,
                             "env": {{ "OWN": "1" }} }}],
                 "deploy": {{ "production": {{ "env": {{ "VAR": "deployed" }} }} }} }}"#
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    ok_env(
        &r,
        &["start", config, "--env", "production"],
        &[("VAR", "shell")],
    );
    r.wait_report("report", "start web-production VAR=deployed");
    let p = r.process("web-production");
    let own: Vec<&str> = p.spec.env.keys().map(String::as_str).collect();
    assert_eq!(own, ["OWN", "VAR"]);
    // The file's environment is taken again on a restart of the file.
    ok_env(&r, &["restart", config, "--env", "production"], &[]);
    assert_eq!(r.process("web-production").restarts, 1);
    r.ok(&["delete", config, "--env", "production"]);
    assert!(r.jlist().is_empty());
}

#[test]
fn execute_command_runs_instances_in_fork_mode() {
    let r = Rsup::new();
    let app = script(&r, "forked.js");
    ok_env(&r, &["start", &app, "-x", "-i", "2"], &[]);
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    assert!(procs.iter().all(|p| p.spec.exec_mode == ExecMode::Fork));
}

#[test]
fn exit_codes_follow_pm2() {
    let r = Rsup::new();
    let bare = r.run(&[]);
    assert!(!bare.status.success());
    for args in [
        &["restart", "all"][..],
        &["stop", "all"],
        &["reload", "all"],
        &["delete", "all"],
    ] {
        let out = r.run(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("no process found"),
            "{}",
            stderr(&out)
        );
    }
    let app = script(&r, "app.js");
    ok_env(&r, &["start", &app], &[]);
    for args in [
        &["restart", "BULLSHIT"][..],
        &["restart", "666"],
        &["stop", "12412"],
        &["delete", "toto"],
        &["describe", "asdsa"],
        &["info", "asdsa"],
        &["env", "9"],
        &["start", "eyayimfake"],
    ] {
        let out = r.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
    }
    assert!(r.ok(&["info", "0"]).contains("app"));
    r.ok(&["restart", "all"]);
}

#[test]
fn pm2_flags_and_commands_rsup_lacks_get_one_clear_line() {
    let r = Rsup::new();
    let app = script(&r, "app.js");
    let out = r.run(&["start", &app, "--container"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "rsup: --container is a PM2 flag that rsup does not support (rsup start --help lists the flags it has)"
    );
    let out = r.run(&["plus"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "rsup: plus is a PM2 command that rsup does not support (rsup --help lists the commands it has)"
    );
    assert!(r.jlist().is_empty());
    // PM2's switches for its own monitoring mean nothing here: taken as is.
    ok_env(
        &r,
        &[
            "start",
            &app,
            "--no-automation",
            "--no-pmx",
            "--no-vizion",
            "--trace",
        ],
        &[],
    );
    assert_eq!(r.jlist().len(), 1);
}

#[test]
fn start_with_nothing_given_starts_ecosystem_config_js() {
    let r = Rsup::new();
    let app = script(&r, "app.js");
    std::fs::write(
        r.path("ecosystem.config.js"),
        format!("module.exports = {{ apps: [{{ name: 'eco', script: {app:?} }}] }};"),
    )
    .unwrap();
    ok_env(&r, &["start"], &[]);
    assert_eq!(summary(&r.jlist()), [row("eco", Status::Online, 0)]);
}

#[test]
fn init_writes_sample_configs_that_start_reads() {
    let r = Rsup::new();
    script(&r, "app.js");
    // `init simple`: one app running ./app.js, which `start` alone starts.
    let said = ok_env(&r, &["init", "simple"], &[]);
    let file = r.path("ecosystem.config.js");
    assert_eq!(said.trim(), format!("File {} generated", file.display()));
    ok_env(&r, &["start"], &[]);
    assert_eq!(summary(&r.jlist()), [row("app1", Status::Online, 0)]);
    // `ecosystem` (and `init` with any other word) writes the full sample over it.
    ok_env(&r, &["ecosystem"], &[]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("app1") && text.contains("'worker'"),
        "{text}"
    );
    script(&r, "worker.js");
    ok_env(
        &r,
        &["start", "ecosystem.config.js", "--only", "worker"],
        &[],
    );
    let mut names: Vec<_> = r.jlist().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, ["app1", "worker"]);
}
