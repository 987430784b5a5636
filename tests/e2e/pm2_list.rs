//! `jlist` and `prettylist` in PM2's shape, as scripts and tools written
//! for PM2 read them; `jlist --native` keeps rsup's own records.

use crate::harness::*;
use serde_json::Value;
use std::process::Command;

impl Rsup {
    /// `jlist`: PM2's list of processes.
    fn pm2_jlist(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["jlist"])).expect("jlist is JSON")
    }
}

/// Starts the fixture app as `name` from a config file whose `env` holds
/// `env`: the app's own variables, which the lists show (those it inherits
/// from the shell they leave out).
fn start_with_env(r: &Rsup, name: &str, flags: &[&str], env: &[(&str, &str)]) {
    let vars: serde_json::Map<String, Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let config = r.path(&format!("{name}.json"));
    let app = serde_json::json!([{ "name": name, "script": fixture("app.js"), "env": vars }]);
    std::fs::write(&config, app.to_string()).unwrap();
    let out = r
        .cmd()
        .arg("start")
        .arg(&config)
        .args(flags)
        .output()
        .expect("rsup runs");
    assert_success(&out);
}

fn by_id(list: &[Value], id: u32) -> &Value {
    list.iter()
        .find(|p| p["pm_id"] == id)
        .unwrap_or_else(|| panic!("no pm_id {id} in {list:?}"))
}

#[test]
fn jlist_is_pm2s_list_with_rsups_values() {
    let r = Rsup::new();
    start_with_env(&r, "web", &["-i", "2"], &[("GREETING", "hi")]);
    assert_success(&r.start_fixture("app.js", "solo", &["--", "--port", "80"], &[]));
    let native = r.jlist();
    assert_eq!(native.len(), 3);
    let list = r.pm2_jlist();
    assert_eq!(list.len(), 3);
    for n in &native {
        let p = by_id(&list, n.id);
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["pid", "name", "pm2_env", "pm_id", "monit"]);
        assert_eq!(p["pid"], n.pid.expect("running"));
        assert_eq!(p["name"], n.name.as_str());
        assert!(p["monit"]["memory"].as_u64().is_some());
        assert!(p["monit"]["cpu"].as_f64().is_some());
        let env = &p["pm2_env"];
        assert_eq!(env["name"], n.name.as_str());
        assert_eq!(env["pm_id"], n.id);
        assert_eq!(env["status"], "online");
        assert_eq!(env["restart_time"], 0);
        assert_eq!(env["unstable_restarts"], 0);
        assert_eq!(env["namespace"], "default");
        assert_eq!(env["NODE_APP_INSTANCE"], n.instance);
        assert_eq!(env["pm_exec_path"], fixture("app.js").to_str().unwrap());
        assert_eq!(env["pm_cwd"], r.work.path().to_str().unwrap());
        assert_eq!(env["pm_out_log_path"], n.out_log.to_str().unwrap());
        assert_eq!(env["pm_err_log_path"], n.err_log.to_str().unwrap());
        assert_eq!(env["pm_pid_path"], n.pid_file.to_str().unwrap());
        assert!(n.out_log.exists(), "{}", n.out_log.display());
        assert!(env.get("pm_log_path").is_none(), "no -l, no pm_log_path");
        assert_eq!(env["node_args"], Value::Array(vec![]));
        // The interpreter rsup runs, found in PATH.
        let interpreter = env["exec_interpreter"].as_str().unwrap();
        assert!(
            interpreter.starts_with('/') && interpreter.ends_with("/node"),
            "{interpreter}"
        );
        assert!(env["pm_uptime"].as_u64().unwrap() >= env["created_at"].as_u64().unwrap());
    }
    let web: Vec<&Value> = list.iter().filter(|p| p["name"] == "web").collect();
    for p in &web {
        let env = &p["pm2_env"];
        assert_eq!(env["exec_mode"], "cluster_mode");
        assert_eq!(env["instances"], 2);
        // The app's environment, in `env` and merged into pm2_env.
        assert_eq!(env["env"]["GREETING"], "hi");
        assert_eq!(env["GREETING"], "hi");
    }
    let mut instances: Vec<u64> = web
        .iter()
        .map(|p| p["pm2_env"]["NODE_APP_INSTANCE"].as_u64().unwrap())
        .collect();
    instances.sort();
    assert_eq!(instances, [0, 1]);
    let solo = list.iter().find(|p| p["name"] == "solo").unwrap();
    assert_eq!(solo["pm2_env"]["exec_mode"], "fork_mode");
    assert_eq!(solo["pm2_env"]["args"], serde_json::json!(["--port", "80"]));
}

#[test]
fn jlist_follows_restarts_and_stops() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let first_pid = r.process("api").pid.unwrap();
    // Its SIGINT handler is in place once it reports "start".
    r.wait_report("report", "start");
    r.ok(&["restart", "api"]);
    let list = r.pm2_jlist();
    let env = &list[0]["pm2_env"];
    assert_eq!(env["restart_time"], 1);
    assert_eq!(env["status"], "online");
    assert_ne!(list[0]["pid"], first_pid);
    // The old process exited on SIGINT with code 0 (the fixture's handler).
    assert_eq!(env["exit_code"], 0);

    r.ok(&["stop", "api"]);
    let list = r.pm2_jlist();
    assert_eq!(list[0]["pid"], 0);
    assert_eq!(list[0]["pm2_env"]["status"], "stopped");
    assert_eq!(
        list[0]["monit"],
        serde_json::json!({ "memory": 0, "cpu": 0 })
    );
}

#[test]
fn prettylist_is_nodes_inspect_of_jlist() {
    let r = Rsup::new();
    start_with_env(&r, "echo", &[], &[("PORT", "3000")]);
    assert_success(&r.start_fixture("app.js", "web", &["-i", "2"], &[]));
    // Stopped, the lists hold nothing that changes between two calls.
    r.ok(&["stop", "all"]);
    let jlist = r.ok(&["jlist"]);
    let pretty = r.ok(&["prettylist"]);
    let file = r.path("jlist.json");
    std::fs::write(&file, &jlist).unwrap();
    let node = Command::new("node")
        .args([
            "-e",
            "const fs = require('fs');\
             const list = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));\
             process.stdout.write(require('util').inspect(list, false, null, false) + '\\n');",
        ])
        .arg(&file)
        .output()
        .expect("node runs");
    assert_success(&node);
    assert_eq!(pretty, String::from_utf8(node.stdout).unwrap());
    // What PM2's e2e scripts count in it, once per process.
    let count = |s: &str| pretty.matches(s).count();
    assert_eq!(count("stopped"), 3);
    assert_eq!(count("restart_time: 0"), 3);
    assert_eq!(count("fork_mode"), 1);
    assert_eq!(count("exec_mode: 'cluster_mode'"), 2);
    assert_eq!(count("PORT: '3000'"), 2, "in env and merged into pm2_env");
    assert_eq!(count("app.js"), 3, "pm_exec_path only");
}

#[test]
fn jlist_native_is_rsups_own_records_and_not_in_help() {
    let r = Rsup::new();
    assert_eq!(r.ok(&["jlist"]), "[]\n");
    assert_eq!(r.ok(&["prettylist"]), "[]\n");
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let native = r.jlist();
    assert_eq!(native[0].name, "api");
    assert_eq!(native[0].spec.name, "api");
    for args in [&["--help"][..], &["jlist", "--help"]] {
        let help = r.ok(args);
        assert!(!help.contains("native"), "{help}");
    }
    assert!(r.ok(&["--help"]).contains("prettylist"));
    // describe reads the same records.
    let described = r.ok(&["describe", "api"]);
    assert!(described.contains("Describing process with id 0 - name api"));
}

/// PM2_PROCESS_INSTANCE_VAR names the instance variable; each process has
/// a `unique_id` of its own, kept across restarts, and the `node_version`
/// of its interpreter.
#[test]
fn instance_var_from_the_environment_unique_ids_and_node_version() {
    let r = Rsup::new();
    let out = r.start_fixture(
        "app.js",
        "api",
        // Fork mode: online at once, without listening.
        &["-i", "2", "-x"],
        &[("PM2_PROCESS_INSTANCE_VAR", "INSTANCE_ID")],
    );
    assert_success(&out);
    let list = r.pm2_jlist();
    let ids: Vec<String> = [0, 1]
        .map(|id| {
            let env = &by_id(&list, id)["pm2_env"];
            assert_eq!(env["INSTANCE_ID"], id, "{env}");
            assert!(env.get("NODE_APP_INSTANCE").is_none(), "{env}");
            env["unique_id"].as_str().unwrap().to_string()
        })
        .into();
    assert!(
        ids.iter()
            .all(|u| u.len() == 36 && u.matches('-').count() == 4),
        "{ids:?}"
    );
    assert_ne!(ids[0], ids[1]);
    // The process has both in its environment, as under PM2.
    let pid = by_id(&list, 1)["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(vars.contains(&"INSTANCE_ID=1".to_string()), "{vars:?}");
    assert!(vars.contains(&format!("unique_id={}", ids[1])), "{vars:?}");

    r.ok(&["restart", "api"]);
    let list = r.pm2_jlist();
    for id in [0, 1] {
        assert_eq!(by_id(&list, id)["pm2_env"]["unique_id"], ids[id as usize]);
    }
    let node = Command::new("node").arg("--version").output().unwrap();
    let node = String::from_utf8_lossy(&node.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    wait_for("node_version in the list", || {
        let list = r.pm2_jlist();
        (by_id(&list, 0)["pm2_env"]["node_version"] == node.as_str()).then_some(())
    });
}

/// `rsup jlist | head -c 1`: the CLI ends on the closed pipe, quietly, as
/// other tools do, and the daemon serves on.
#[test]
fn a_list_read_by_a_reader_that_stops_ends_quietly() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &["-i", "4"], &[]));
    for verb in ["jlist", "prettylist", "ls"] {
        let child = r
            .cmd()
            .arg(verb)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before the list comes.
        let mut child = child;
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{verb}: {err}");
        assert!(err.is_empty(), "{verb}: {err}");
    }
    assert_eq!(r.jlist().len(), 4);
}
