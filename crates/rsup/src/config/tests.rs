//! The public API against real files and a real `node`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rsup_proto::app::{defaults, ExecMode};
use tempfile::TempDir;

use super::*;

struct Fixture {
    /// Kept so the directory lives as long as the fixture.
    _dir: TempDir,
    ctx: Context,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k == "PATH" || k == "HOME")
            .collect();
        env.insert("FROM_CLI".into(), "cli".into());
        env.insert("SHARED".into(), "cli".into());
        let ctx = Context {
            // Canonical, so expected paths compare equal on systems where
            // the temp dir is behind a symlink.
            cwd: dir.path().canonicalize().unwrap(),
            env,
            cpus: 4,
            logs_dir: "/home/u/.rsup/logs".into(),
        };
        Fixture { _dir: dir, ctx }
    }

    fn root(&self) -> &Path {
        &self.ctx.cwd
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self, rel: &str, ov: &Overrides) -> Result<Loaded, ConfigError> {
        load_config_file(Path::new(rel), ov, &self.ctx)
    }

    fn load_one(&self, rel: &str, ov: &Overrides) -> AppSpec {
        let mut loaded = self.load(rel, ov).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.apps.len(), 1);
        loaded.apps.remove(0)
    }

    fn ecosystem(&self, apps: &str) {
        self.write(
            "ecosystem.config.js",
            &format!("module.exports = {{ apps: {apps} }};\n"),
        );
    }
}

fn err(r: Result<Loaded, ConfigError>) -> String {
    match r {
        Ok(l) => panic!("expected an error, got {:?}", l.apps),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_of_a_plain_js_app() {
    let f = Fixture::new();
    f.write("app.js", "");
    f.ecosystem("[{ script: 'app.js' }]");
    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    assert_eq!(a.name, "app");
    assert_eq!(a.script, f.root().join("app.js").to_string_lossy());
    assert_eq!(a.cwd, f.root());
    assert!(a.args.is_empty());
    assert!(a.node);
    assert!(a.interpreter.as_deref().unwrap().ends_with("/node"));
    assert!(a.node_args.is_empty());
    assert_eq!(a.instances, 1);
    assert_eq!(a.exec_mode, ExecMode::Fork);
    assert!(!a.wait_ready);
    assert_eq!(a.listen_timeout_ms, defaults::LISTEN_TIMEOUT_MS);
    assert_eq!(a.kill_timeout_ms, defaults::KILL_TIMEOUT_MS);
    assert_eq!(a.kill_signal, "SIGINT");
    assert!(!a.shutdown_with_message);
    assert!(a.treekill);
    assert!(a.autorestart);
    assert_eq!(a.max_restarts, 16);
    assert_eq!(a.min_uptime_ms, 1000);
    assert_eq!(a.restart_delay_ms, 0);
    assert_eq!(a.exp_backoff_restart_delay_ms, 0);
    assert_eq!(a.instance_var, "NODE_APP_INSTANCE");
    assert_eq!(a.out_file, None);
    assert_eq!(a.error_file, None);
    assert!(a.merge_logs);
    assert_eq!(a.log_date_format, None);
    assert!(!a.time);
    // The CLI's environment is inherited, kept apart from the app's own.
    assert_eq!(a.inherited_env["FROM_CLI"], "cli");
    assert!(a.env.is_empty(), "{:?}", a.env);
}

#[test]
fn every_key_and_alias() {
    let f = Fixture::new();
    f.write("srv/server.js", "");
    f.write(
        "ecosystem.config.js",
        r#"module.exports = { apps: [{
            name: 'api', exec: 'server.js', cwd: 'srv', args: '--port 80 --msg "a b"',
            interpreter_args: ['--max-old-space-size=256'], instances: 3, exec_mode: 'fork_mode',
            env: { A: 1 }, waitReady: true, listen_timeout: 8000, kill_timeout: '5000',
            kill_signal: 'TERM', shutdown_with_message: true, treekill: false, autorestart: false,
            max_restarts: 3, min_uptime: '5s', restart_delay: 250, exp_backoff_restart_delay: 100,
            instance_var: 'INSTANCE_ID', output: 'logs/out.log', err: '/tmp/err.log',
            combine_logs: true, log_date_format: 'YYYY-MM-DD HH:mm Z',
        }] };"#,
    );
    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    let srv = f.root().join("srv");
    assert_eq!(a.name, "api");
    assert_eq!(a.script, srv.join("server.js").to_string_lossy());
    assert_eq!(a.cwd, srv);
    assert_eq!(a.args, ["--port", "80", "--msg", "a b"]);
    assert_eq!(a.node_args, ["--max-old-space-size=256"]);
    assert_eq!(a.instances, 3);
    assert_eq!(a.exec_mode, ExecMode::Fork);
    assert_eq!(a.env["A"], "1");
    assert!(a.wait_ready);
    assert_eq!(a.listen_timeout_ms, 8000);
    assert_eq!(a.kill_timeout_ms, 5000);
    assert_eq!(a.kill_signal, "SIGTERM");
    assert!(a.shutdown_with_message);
    assert!(!a.treekill);
    assert!(!a.autorestart);
    assert_eq!(a.max_restarts, 3);
    assert_eq!(a.min_uptime_ms, 5000);
    assert_eq!(a.restart_delay_ms, 250);
    assert_eq!(a.exp_backoff_restart_delay_ms, 100);
    assert_eq!(a.instance_var, "INSTANCE_ID");
    assert_eq!(a.out_file, Some(srv.join("logs/out.log")));
    assert_eq!(a.error_file, Some(PathBuf::from("/tmp/err.log")));
    assert!(a.merge_logs);
    assert_eq!(a.log_date_format.as_deref(), Some("%Y-%m-%d %H:%M %:z"));
    assert!(a.time);
}

#[test]
fn instances_max_zero_negative_and_auto_cluster() {
    let f = Fixture::new();
    f.write("a.js", "");
    let cases = [
        ("'max'", 4),
        ("0", 4),
        ("-1", 3),
        ("-9", 1),
        ("2", 2),
        ("'2'", 2),
    ];
    for (value, expected) in cases {
        f.ecosystem(&format!("[{{ script: 'a.js', instances: {value} }}]"));
        let a = f.load_one("ecosystem.config.js", &Overrides::default());
        assert_eq!(a.instances, expected, "instances: {value}");
        // PM2 switches a Node script with `instances` to cluster mode.
        assert_eq!(a.exec_mode, ExecMode::Cluster, "instances: {value}");
    }
    f.ecosystem("[{ script: 'a.js', instances: 2, exec_mode: 'fork' }]");
    assert_eq!(
        f.load_one("ecosystem.config.js", &Overrides::default())
            .exec_mode,
        ExecMode::Fork
    );
}

#[test]
fn merge_logs_default_follows_pm2() {
    let f = Fixture::new();
    f.write("a.js", "");
    for (app, merged) in [
        ("{ script: 'a.js' }", true),
        ("{ script: 'a.js', instances: 'max' }", true),
        ("{ script: 'a.js', instances: 2 }", false),
        ("{ script: 'a.js', exec_mode: 'cluster' }", false),
        ("{ script: 'a.js', instances: 2, merge_logs: true }", true),
    ] {
        f.ecosystem(&format!("[{app}]"));
        let a = f.load_one("ecosystem.config.js", &Overrides::default());
        assert_eq!(a.merge_logs, merged, "{app}");
    }
}

#[test]
fn non_node_interpreters_run_in_fork_mode() {
    let f = Fixture::new();
    f.write("job.sh", "echo hi\n");
    f.ecosystem("[{ script: 'job.sh', instances: 2, exec_mode: 'cluster' }]");
    let loaded = f
        .load("ecosystem.config.js", &Overrides::default())
        .unwrap();
    let a = &loaded.apps[0];
    assert!(a.interpreter.as_deref().unwrap().ends_with("/bash"));
    assert!(!a.node);
    assert_eq!(a.exec_mode, ExecMode::Fork);
    assert_eq!(a.instances, 2);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("cluster mode needs")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn interpreter_none_and_path_commands() {
    let f = Fixture::new();
    let run = f.write("run", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    f.ecosystem("[{ script: './run', interpreter: 'none' }, { name: 'sleeper', script: 'sleep', interpreter: 'none', args: '60' }]");
    let loaded = f
        .load("ecosystem.config.js", &Overrides::default())
        .unwrap();
    assert_eq!(loaded.apps[0].interpreter, None);
    assert!(!loaded.apps[0].node);
    assert!(
        loaded.apps[1].script.ends_with("/sleep"),
        "{}",
        loaded.apps[1].script
    );
    assert_eq!(loaded.apps[1].args, ["60"]);

    // A shebang script without extension runs directly, without node.
    f.ecosystem("[{ script: 'run' }]");
    assert_eq!(
        f.load_one("ecosystem.config.js", &Overrides::default())
            .interpreter,
        None
    );
}

#[test]
fn command_line_script_runs_in_a_shell() {
    let f = Fixture::new();
    f.ecosystem("[{ name: 'cmd', script: 'echo hello world' }]");
    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    assert!(a.script.ends_with("/bash") || a.script.ends_with("/sh"));
    assert_eq!(a.args, ["-c", "echo hello world"]);
    assert_eq!(a.interpreter, None);
}

#[test]
fn env_layers_and_env_name() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem(
        "[{ script: 'a.js', port: 4000, env: { SHARED: 'file', NODE_ENV: 'development', GONE: null }, \
           env_production: { NODE_ENV: 'production', EXTRA: 'x' } }]",
    );
    let mut ctx_env = f.ctx.env.clone();
    ctx_env.insert("GONE".into(), "still here".into());
    let f = Fixture {
        ctx: Context {
            env: ctx_env,
            ..f.ctx.clone()
        },
        ..f
    };

    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    let own: Vec<&str> = a.env.keys().map(String::as_str).collect();
    assert_eq!(own, ["NODE_ENV", "PORT", "SHARED"]);
    assert_eq!(a.inherited_env["FROM_CLI"], "cli");
    assert_eq!(a.env_unset, ["GONE"]);
    let env = a.process_env();
    assert_eq!(env["FROM_CLI"], "cli");
    assert_eq!(env["SHARED"], "file");
    assert_eq!(env["NODE_ENV"], "development");
    assert_eq!(env["PORT"], "4000");
    assert!(!env.contains_key("GONE"));
    assert!(!env.contains_key("EXTRA"));

    let ov = Overrides {
        env_name: Some("production".into()),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &ov);
    assert_eq!(a.env["NODE_ENV"], "production");
    assert_eq!(a.env["EXTRA"], "x");
    assert_eq!(a.env["SHARED"], "file");

    // A missing env_<name> is a warning, as in PM2.
    let ov = Overrides {
        env_name: Some("staging".into()),
        ..Default::default()
    };
    let loaded = f.load("ecosystem.config.js", &ov).unwrap();
    assert_eq!(loaded.apps[0].env["NODE_ENV"], "development");
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("\"env_staging\" is not defined")));
}

#[test]
fn wrong_type_error_names_file_app_and_key() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: 'api', script: 'a.js', instances: true }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        "ecosystem.config.js: app \"api\": \"instances\" must be a number or \"max\", got true"
    );
    f.ecosystem("[{ script: 'a.js' }, { script: 'a.js', name: 'b', kill_timeout: 'soon' }]");
    assert!(err(f.load("ecosystem.config.js", &Overrides::default()))
        .starts_with("ecosystem.config.js: app \"b\": \"kill_timeout\""));
}

#[test]
fn syntax_error_in_js() {
    let f = Fixture::new();
    f.write(
        "ecosystem.config.js",
        "module.exports = {\n  apps: [{ script: 'a.js' }\n}\n",
    );
    let e = err(f.load("ecosystem.config.js", &Overrides::default()));
    assert!(
        e.starts_with("ecosystem.config.js: does not evaluate: SyntaxError: "),
        "{e}"
    );
    assert!(!e.contains('\n'));
}

#[test]
fn missing_file_and_missing_script() {
    let f = Fixture::new();
    let e = err(f.load("nope.config.js", &Overrides::default()));
    assert!(e.starts_with("nope.config.js: file not found: /"), "{e}");

    f.ecosystem("[{ name: 'api', script: 'missing.js' }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        format!(
            "ecosystem.config.js: app \"api\": script not found: {}",
            f.root().join("missing.js").display()
        )
    );

    f.ecosystem("[{ name: 'api' }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        "ecosystem.config.js: app \"api\": \"script\" is required"
    );
    f.ecosystem("[{ instances: 2 }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        "ecosystem.config.js: app #1: \"script\" is required"
    );

    let e = app_from_script("app.js", &Overrides::default(), &f.ctx)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "app.js: script not found: {}",
            f.root().join("app.js").display()
        )
    );
}

#[test]
fn unknown_and_unsupported_keys_are_warnings() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: 'api', script: 'a.js', uid: 'www', colour: 'blue', vizion: false }]");
    let loaded = f
        .load("ecosystem.config.js", &Overrides::default())
        .unwrap();
    assert_eq!(loaded.apps.len(), 1);
    assert_eq!(
        loaded.warnings,
        [
            "ecosystem.config.js: app \"api\": \"uid\" is not supported by rsup and is ignored",
            "ecosystem.config.js: app \"api\": unknown key \"colour\" is ignored",
        ]
    );
}

#[test]
fn only_filters_by_name() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: 'api', script: 'a.js' }, { name: 'worker', script: 'a.js' }, { name: 'cron', script: 'a.js' }]");
    let ov = Overrides {
        only: Some("worker, cron".into()),
        ..Default::default()
    };
    let names: Vec<_> = f
        .load("ecosystem.config.js", &ov)
        .unwrap()
        .apps
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["worker", "cron"]);

    let ov = Overrides {
        only: Some("nope".into()),
        ..Default::default()
    };
    assert!(err(f.load("ecosystem.config.js", &ov)).contains("--only: no app named \"nope\""));
}

#[test]
fn env_name_takes_the_deploy_env_under_the_apps_own() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.write(
        "eco.json",
        r#"{ "apps": [{ "name": "api", "script": "a.js", "env": { "A": "env" },
                       "env_production": { "B": "env_production" } }],
             "deploy": { "production": { "env": { "A": "deploy", "B": "deploy", "C": "deploy" } },
                         "staging": { "user": "node" } } }"#,
    );
    let with_env = |name: &str| Overrides {
        env_name: Some(name.into()),
        ..Default::default()
    };
    let a = f.load_one("eco.json", &with_env("production"));
    let own: Vec<(&str, &str)> = a.env.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        own,
        [("A", "env"), ("B", "env_production"), ("C", "deploy")]
    );
    // Without --env the deploy section is not read; one without env is none.
    assert!(!f
        .load_one("eco.json", &Overrides::default())
        .env
        .contains_key("C"));
    assert_eq!(f.load_one("eco.json", &with_env("staging")).env["A"], "env");

    f.write(
        "bad.json",
        r#"{ "apps": [{ "script": "a.js" }], "deploy": { "production": { "env": "A=1" } } }"#,
    );
    let e = err(f.load("bad.json", &with_env("production")));
    assert!(
        e.contains("\"deploy.production.env\" must be an object"),
        "{e}"
    );
}

#[test]
fn append_env_to_name_with_env_name() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.write(
        "apps.json",
        r#"[{ "name": "web", "script": "a.js", "append_env_to_name": true },
            { "name": "worker", "script": "a.js" }]"#,
    );
    let names = |ov: &Overrides| -> Vec<String> {
        f.load("apps.json", ov)
            .unwrap()
            .apps
            .into_iter()
            .map(|a| a.name)
            .collect()
    };
    assert_eq!(names(&Overrides::default()), ["web", "worker"]);
    let dev = Overrides {
        env_name: Some("dev".into()),
        ..Default::default()
    };
    assert_eq!(names(&dev), ["web-dev", "worker"]);
    // --only names the apps as written, as PM2 does.
    let only = Overrides {
        only: Some("web".into()),
        ..dev.clone()
    };
    assert_eq!(names(&only), ["web-dev"]);
    // Stop and delete find the same names without resolving the apps.
    std::fs::remove_file(f.root().join("a.js")).unwrap();
    assert_eq!(
        app_names_in_file(Path::new("apps.json"), &dev, &f.ctx).unwrap(),
        ["web-dev", "worker"]
    );
    assert!(f.load("apps.json", &dev).is_err());
}

#[test]
fn apps_as_text_start_from_the_cli_cwd() {
    let f = Fixture::new();
    f.write("a.js", "");
    let loaded = load_config_text(
        "stdin",
        r#"[{ "name": "x", "script": "./a.js" }]"#,
        &Overrides::default(),
        &f.ctx,
    )
    .unwrap();
    assert_eq!(
        loaded.apps[0].script,
        f.root().join("a.js").to_string_lossy()
    );
    // One app object, as PM2 takes it too; JavaScript notation works.
    let loaded =
        load_config_text("stdin", "{ script: 'a.js' }", &Overrides::default(), &f.ctx).unwrap();
    assert_eq!(loaded.apps[0].name, "a");
    let e = load_config_text("stdin", "[{", &Overrides::default(), &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("stdin: "), "{e}");
    assert_eq!(
        app_names_in_text(
            "stdin",
            r#"{"apps":[{"script":"gone.js"}]}"#,
            &Overrides::default(),
            &f.ctx
        )
        .unwrap(),
        ["gone"]
    );
}

#[test]
fn name_flag_needs_one_app() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: 'api', script: 'a.js' }, { name: 'worker', script: 'a.js' }]");
    let ov = Overrides {
        name: Some("renamed".into()),
        ..Default::default()
    };
    assert!(err(f.load("ecosystem.config.js", &ov)).contains("--name applies to one app"));
    let ov = Overrides {
        name: Some("renamed".into()),
        only: Some("worker".into()),
        ..Default::default()
    };
    assert_eq!(f.load_one("ecosystem.config.js", &ov).name, "renamed");
}

#[test]
fn duplicate_names_are_an_error() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ script: 'a.js' }, { script: './a.js' }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        "ecosystem.config.js: two apps are named \"a\"; names must be unique"
    );
}

#[test]
fn invalid_names_fail_naming_the_app_wherever_they_come_from() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: '../../etc', script: 'a.js' }]");
    assert_eq!(
        err(f.load("ecosystem.config.js", &Overrides::default())),
        "ecosystem.config.js: app \"../../etc\": invalid name: a name must not contain \"/\" (it is part of log file names)"
    );

    // A name too long to show stays one short line.
    f.ecosystem(&format!(
        "[{{ name: '{}', script: 'a.js' }}]",
        "n".repeat(10_000)
    ));
    let e = err(f.load("ecosystem.config.js", &Overrides::default()));
    assert!(e.contains("at most 128 bytes"), "{e}");
    assert!(e.len() < 250 && !e.contains('\n'), "{e}");

    // `--name` is checked for a file's app and for a script.
    f.ecosystem("[{ name: 'api', script: 'a.js' }]");
    let ov = Overrides {
        name: Some("a\tb".into()),
        ..Default::default()
    };
    assert_eq!(
        err(f.load("ecosystem.config.js", &ov)),
        "ecosystem.config.js: --name \"a\\tb\": invalid name: a name must not contain control characters such as newlines or tabs"
    );
    let ov = Overrides {
        name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        err(app_from_script("a.js", &ov, &f.ctx)),
        "a.js: invalid app name \"\": a name must not be empty"
    );

    // A script's default name is checked as well.
    f.write("all.js", "");
    let e = err(app_from_script("all.js", &Overrides::default(), &f.ctx));
    assert!(
        e.starts_with("all.js: invalid app name \"all\": \"all\" is the target for every app"),
        "{e}"
    );
}

#[test]
fn log_files_that_are_links_or_another_users_are_refused() {
    let f = Fixture::new();
    f.write("a.js", "");
    let target = f.write("mine.log", "");
    std::os::unix::fs::symlink(&target, f.root().join("link.log")).unwrap();
    let ov = Overrides {
        out_file: Some("link.log".into()),
        ..Default::default()
    };
    let e = err(app_from_script("a.js", &ov, &f.ctx));
    assert_eq!(
        e,
        format!(
            "a.js: --output: {} is a symbolic link; rsup does not write logs through links",
            f.root().join("link.log").display()
        )
    );
    f.ecosystem("[{ name: 'api', script: 'a.js', error_file: 'link.log' }]");
    let e = err(f.load("ecosystem.config.js", &Overrides::default()));
    assert!(e.contains("app \"api\": \"error_file\": "), "{e}");

    // The user's own files, new ones and /dev/null are fine.
    f.ecosystem("[{ name: 'api', script: 'a.js', out_file: 'mine.log', error_file: 'new.log' }]");
    f.load_one("ecosystem.config.js", &Overrides::default());
    f.ecosystem("[{ name: 'api', script: 'a.js', out_file: 'NULL', error_file: '/dev/stderr' }]");
    f.load_one("ecosystem.config.js", &Overrides::default());

    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&target, Some(4242), Some(4242)).unwrap();
        f.ecosystem("[{ name: 'api', script: 'a.js', out_file: 'mine.log' }]");
        let e = err(f.load("ecosystem.config.js", &Overrides::default()));
        assert!(e.contains("mine.log belongs to uid 4242"), "{e}");
    }
}

#[test]
fn flags_win_over_file() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.write("other/b.js", "");
    f.ecosystem(
        "[{ script: 'a.js', instances: 2, kill_timeout: 100, kill_signal: 'SIGTERM', args: ['x'], \
           out_file: 'file.log', autorestart: true }]",
    );
    let ov = Overrides {
        instances: Some("max".into()),
        kill_timeout_ms: Some(9000),
        kill_signal: Some("SIGUSR2".into()),
        args: vec!["y".into()],
        out_file: Some("flag.log".into()),
        autorestart: Some(false),
        time: Some(true),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &ov);
    assert_eq!(a.instances, 4);
    assert_eq!(a.exec_mode, ExecMode::Cluster);
    assert_eq!(a.kill_timeout_ms, 9000);
    assert_eq!(a.kill_signal, "SIGUSR2");
    assert_eq!(a.args, ["y"]);
    assert_eq!(a.out_file, Some(f.root().join("flag.log")));
    assert!(!a.autorestart);
    assert!(a.time);
    assert_eq!(a.log_date_format, None);
}

#[test]
fn kill_signal_precedence() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ script: 'a.js' }]");
    let with_env = |pairs: &[(&str, &str)]| {
        let mut ctx = f.ctx.clone();
        ctx.env
            .extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ctx
    };
    let signal_of = |ctx: &Context, ov: &Overrides| {
        load_config_file(Path::new("ecosystem.config.js"), ov, ctx)
            .map(|l| l.apps[0].kill_signal.clone())
    };
    let none = Overrides::default();
    assert_eq!(signal_of(&f.ctx, &none).unwrap(), "SIGINT");
    assert_eq!(
        signal_of(&with_env(&[("PM2_KILL_SIGNAL", "SIGHUP")]), &none).unwrap(),
        "SIGHUP"
    );
    let both = with_env(&[("PM2_KILL_SIGNAL", "SIGHUP"), ("RSUP_KILL_SIGNAL", "TERM")]);
    assert_eq!(signal_of(&both, &none).unwrap(), "SIGTERM");
    let flag = Overrides {
        kill_signal: Some("usr2".into()),
        ..Default::default()
    };
    assert_eq!(signal_of(&both, &flag).unwrap(), "SIGUSR2");

    let e = signal_of(&with_env(&[("RSUP_KILL_SIGNAL", "SIGNOPE")]), &none)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "ecosystem.config.js: app \"a\": RSUP_KILL_SIGNAL in the environment is not a signal name: \"SIGNOPE\""
    );
    f.ecosystem("[{ script: 'a.js', kill_signal: 'BOOM' }]");
    let e = signal_of(&f.ctx, &none).unwrap_err().to_string();
    assert!(
        e.ends_with("\"kill_signal\" is not a signal name: \"BOOM\""),
        "{e}"
    );
}

#[test]
fn config_shapes() {
    let f = Fixture::new();
    f.write("a.js", "");
    // A single app object, an array, and JSON files.
    f.write(
        "single.config.js",
        "module.exports = { script: 'a.js', name: 'one' };",
    );
    assert_eq!(
        f.load_one("single.config.js", &Overrides::default()).name,
        "one"
    );
    f.write("list.config.js", "module.exports = [{ script: 'a.js' }];");
    assert_eq!(
        f.load_one("list.config.js", &Overrides::default()).name,
        "a"
    );
    f.write(
        "process.json",
        r#"{ "apps": [{ "script": "a.js", "name": "j" }] }"#,
    );
    assert_eq!(f.load_one("process.json", &Overrides::default()).name, "j");
    f.write(
        "esm.config.mjs",
        "export default { apps: [{ script: 'a.js', name: 'm' }] };",
    );
    assert_eq!(
        f.load_one("esm.config.mjs", &Overrides::default()).name,
        "m"
    );

    f.write("empty.config.js", "module.exports = { apps: [] };");
    assert_eq!(
        err(f.load("empty.config.js", &Overrides::default())),
        "empty.config.js: no apps defined"
    );
    f.write("bad.config.js", "module.exports = { apps: ['a.js'] };");
    assert!(
        err(f.load("bad.config.js", &Overrides::default())).contains("app #1 must be an object")
    );
}

#[test]
fn config_in_another_directory() {
    let f = Fixture::new();
    f.write("proj/server.js", "");
    f.write(
        "proj/ecosystem.config.js",
        "module.exports = { apps: [{ script: 'server.js', out_file: 'out.log' }] };",
    );
    let a = f.load_one("proj/ecosystem.config.js", &Overrides::default());
    assert_eq!(a.cwd, f.root().join("proj"));
    assert_eq!(a.script, f.root().join("proj/server.js").to_string_lossy());
    assert_eq!(a.out_file, Some(f.root().join("proj/out.log")));
}

#[test]
fn script_mode() {
    let f = Fixture::new();
    f.write("server.js", "");
    let a = app_from_script("server.js", &Overrides::default(), &f.ctx)
        .unwrap()
        .apps
        .remove(0);
    assert_eq!(a.name, "server");
    assert_eq!(a.exec_mode, ExecMode::Fork);
    assert_eq!(a.instances, 1);
    assert!(a.merge_logs);

    let ov = Overrides {
        instances: Some("-1".into()),
        name: Some("web".into()),
        args: vec!["--port".into(), "3000".into()],
        node_args: Some("--inspect --title 'a b'".into()),
        log_date_format: Some("YYYY-MM-DD".into()),
        ..Default::default()
    };
    let a = app_from_script("server.js", &ov, &f.ctx)
        .unwrap()
        .apps
        .remove(0);
    assert_eq!(a.name, "web");
    assert_eq!(a.instances, 3);
    assert_eq!(a.exec_mode, ExecMode::Cluster);
    assert!(!a.merge_logs);
    assert_eq!(a.args, ["--port", "3000"]);
    assert_eq!(a.node_args, ["--inspect", "--title", "a b"]);
    assert_eq!(a.log_date_format.as_deref(), Some("%Y-%m-%d"));
    assert!(a.time);

    let bad = Overrides {
        instances: Some("lots".into()),
        ..Default::default()
    };
    assert_eq!(
        app_from_script("server.js", &bad, &f.ctx)
            .unwrap_err()
            .to_string(),
        "server.js: --instances must be a number or \"max\", got \"lots\""
    );
}

#[test]
fn node_args_flag_honours_quotes_and_rejects_open_ones() {
    let f = Fixture::new();
    f.write("server.js", "");
    f.ecosystem("[{ name: 'api', script: 'server.js', node_args: '--inspect' }]");
    let ov = Overrides {
        node_args: Some(r#"--title "a b" --max-old-space-size=64"#.into()),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &ov);
    assert_eq!(a.node_args, ["--title", "a b", "--max-old-space-size=64"]);

    // An empty flag leaves the file's value.
    let ov = Overrides {
        node_args: Some(" ".into()),
        ..Default::default()
    };
    assert_eq!(
        f.load_one("ecosystem.config.js", &ov).node_args,
        ["--inspect"]
    );

    let bad = Overrides {
        node_args: Some("--title 'a b".into()),
        ..Default::default()
    };
    assert_eq!(
        app_from_script("server.js", &bad, &f.ctx)
            .unwrap_err()
            .to_string(),
        "server.js: --node-args: unterminated quote"
    );
    assert_eq!(
        f.load("ecosystem.config.js", &bad).unwrap_err().to_string(),
        "ecosystem.config.js: app \"api\": --node-args: unterminated quote"
    );
}

#[test]
fn python_gets_unbuffered_output() {
    let f = Fixture::new();
    f.write("job.py", "print(1)\n");
    let Ok(loaded) = app_from_script("job.py", &Overrides::default(), &f.ctx) else {
        return; // no Python on this machine
    };
    let a = &loaded.apps[0];
    assert!(a.interpreter.as_deref().unwrap().contains("python"));
    assert_eq!(a.env["PYTHONUNBUFFERED"], "1");
}

#[test]
fn config_file_detection() {
    for yes in [
        "ecosystem.config.js",
        "ecosystem.config.cjs",
        "ecosystem.config.mjs",
        "pm2.json",
        "./deploy/app.yml",
        "x.yaml",
        "process.prod.json",
    ] {
        assert!(is_config_file(yes), "{yes}");
    }
    for no in ["app.js", "server.mjs", "ecosystem.js", "config.js", "api"] {
        assert!(!is_config_file(no), "{no}");
    }
}

#[test]
fn yaml_files_are_read_as_pm2_reads_them() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.write(
        "ecosystem.yml",
        "apps:\n  - name: api\n    script: a.js\n    instances: 2\n    exec_mode: cluster\n    env:\n      PORT: 3000\n    env_production:\n      NODE_ENV: production\n",
    );
    let ov = Overrides {
        env_name: Some("production".into()),
        ..Overrides::default()
    };
    let a = f.load_one("ecosystem.yml", &ov);
    assert_eq!(a.name, "api");
    assert_eq!(a.instances, 2);
    assert_eq!(a.env["PORT"], "3000");
    assert_eq!(a.env["NODE_ENV"], "production");
    f.write("bad.yaml", "apps:\n  - script: [a.js\n");
    let e = err(f.load("bad.yaml", &Overrides::default()));
    assert!(
        e.starts_with("bad.yaml: does not evaluate: invalid YAML:"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn process_options_from_file_and_flags() {
    let f = Fixture::new();
    f.write("srv/server.js", "");
    f.ecosystem(
        "[{ name: 'api', script: 'server.js', cwd: 'srv', namespace: 'billing', \
           pid: 'run/api.pid', max_memory_restart: '200M', stop_exit_codes: [12, 42], \
           increment_var: 'PORT', env: { PORT: 3000 } }]",
    );
    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    assert_eq!(a.namespace, "billing");
    // Relative to the app's cwd, as log paths in a file are.
    assert_eq!(a.pid_file, Some(f.root().join("srv/run/api.pid")));
    assert_eq!(a.max_memory_restart_bytes, Some(200 << 20));
    assert_eq!(a.stop_exit_codes, [12, 42]);
    assert_eq!(a.increment_var.as_deref(), Some("PORT"));

    let ov = Overrides {
        namespace: Some("jobs".into()),
        pid_file: Some("echo.pid".into()),
        max_memory_restart: Some("1G".into()),
        stop_exit_codes: vec![3],
        instance_var: Some("APP_ID".into()),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &ov);
    assert_eq!(a.namespace, "jobs");
    // Relative to where the flag was typed.
    assert_eq!(a.pid_file, Some(f.root().join("echo.pid")));
    assert_eq!(a.max_memory_restart_bytes, Some(1 << 30));
    assert_eq!(a.stop_exit_codes, [3]);
    assert_eq!(a.instance_var, "APP_ID");

    // Defaults.
    f.write("b.js", "");
    let a = app_from_script("b.js", &Overrides::default(), &f.ctx)
        .unwrap()
        .apps
        .remove(0);
    assert_eq!(a.namespace, "default");
    assert_eq!(a.pid_file, None);
    assert_eq!(a.max_memory_restart_bytes, None);
    assert!(a.stop_exit_codes.is_empty());
    assert_eq!(a.increment_var, None);
}

#[test]
fn bad_process_options_name_their_key_or_flag() {
    let f = Fixture::new();
    f.write("a.js", "");
    let flag = |ov: Overrides| err(app_from_script("a.js", &ov, &f.ctx));
    let e = flag(Overrides {
        max_memory_restart: Some("lots".into()),
        ..Default::default()
    });
    assert!(e.contains("--max-memory-restart must be"), "{e}");
    let e = flag(Overrides {
        namespace: Some("all".into()),
        ..Default::default()
    });
    assert!(e.contains("--namespace: \"all\""), "{e}");
    let e = flag(Overrides {
        instance_var: Some("A=B".into()),
        ..Default::default()
    });
    assert!(e.contains("--instance-var must be a variable name"), "{e}");

    f.ecosystem("[{ script: 'a.js', increment_var: 'PORT', env: { PORT: 'http' } }]");
    let e = err(f.load("ecosystem.config.js", &Overrides::default()));
    assert!(e.contains("\"increment_var\" counts PORT up"), "{e}");
    f.ecosystem("[{ script: 'a.js', namespace: '' }]");
    let e = err(f.load("ecosystem.config.js", &Overrides::default()));
    assert!(
        e.contains("\"namespace\": a namespace must not be empty"),
        "{e}"
    );
}

#[test]
fn pm2_kill_use_message_stops_every_app_with_the_message() {
    let f = Fixture::new();
    f.write("a.js", "");
    let with = |value: &str| {
        let mut ctx = f.ctx.clone();
        ctx.env.insert("PM2_KILL_USE_MESSAGE".into(), value.into());
        app_from_script("a.js", &Overrides::default(), &ctx)
            .unwrap()
            .apps[0]
            .shutdown_with_message
    };
    assert!(with("true"));
    assert!(with("1"));
    assert!(!with("false"));
    assert!(!with(""));
    let plain = app_from_script("a.js", &Overrides::default(), &f.ctx).unwrap();
    assert!(!plain.apps[0].shutdown_with_message);
}

#[test]
fn pm2_process_instance_var_names_the_instance_variable_of_every_app() {
    let f = Fixture::new();
    f.write("a.js", "");
    let mut ctx = f.ctx.clone();
    ctx.env
        .insert("PM2_PROCESS_INSTANCE_VAR".into(), "INSTANCE_ID".into());
    let flag = Overrides {
        instance_var: Some("APP_ID".into()),
        ..Overrides::default()
    };
    let a = app_from_script("a.js", &flag, &ctx).unwrap();
    assert_eq!(a.apps[0].instance_var, "INSTANCE_ID");
    ctx.env
        .insert("PM2_PROCESS_INSTANCE_VAR".into(), "A=B".into());
    let e = app_from_script("a.js", &flag, &ctx).unwrap_err();
    assert!(
        e.to_string()
            .contains("PM2_PROCESS_INSTANCE_VAR must be a variable name"),
        "{e}"
    );
}

/// PM2's `log_file`/`log` and `-l`: a path (relative to the cwd, in a file
/// the app's), `true` or a bare `-l` for `<logs>/<name>.log`, NULL for
/// /dev/null, `false` for none.
#[test]
fn combined_log_file() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem(
        "[{ name: 'rel', script: 'a.js', log: 'logs/all.log' },
          { name: 'dflt', script: 'a.js', log_file: true },
          { name: 'null', script: 'a.js', log_file: 'NULL' },
          { name: 'off', script: 'a.js', log_file: false },
          { name: 'none', script: 'a.js' }]",
    );
    let loaded = f
        .load("ecosystem.config.js", &Overrides::default())
        .unwrap();
    let logs: Vec<Option<PathBuf>> = loaded.apps.iter().map(|a| a.log_file.clone()).collect();
    assert_eq!(
        logs,
        [
            Some(f.root().join("logs/all.log")),
            Some(PathBuf::from("/home/u/.rsup/logs/dflt.log")),
            Some(PathBuf::from("/dev/null")),
            None,
            None,
        ]
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The flag wins; alone it means the default path.
    let bare = Overrides {
        log_file: Some(None),
        only: Some("off".into()),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &bare);
    assert_eq!(
        a.log_file,
        Some(PathBuf::from("/home/u/.rsup/logs/off.log"))
    );
    let a = app_from_script(
        "a.js",
        &Overrides {
            log_file: Some(Some("x/entire.log".into())),
            ..Default::default()
        },
        &f.ctx,
    )
    .unwrap()
    .apps
    .remove(0);
    assert_eq!(a.log_file, Some(f.root().join("x/entire.log")));

    f.ecosystem("[{ script: 'a.js', log_file: 3 }]");
    assert!(err(f.load("ecosystem.config.js", &Overrides::default()))
        .contains("\"log_file\" must be a path, true or false, got 3"));
}

#[test]
fn log_type_json_from_the_file_or_the_flag() {
    let f = Fixture::new();
    f.write("a.js", "");
    f.ecosystem("[{ name: 'j', script: 'a.js', log_type: 'json' }]");
    let a = f.load_one("ecosystem.config.js", &Overrides::default());
    assert_eq!(a.log_type, rsup_proto::app::LogType::Json);
    let raw = Overrides {
        log_type: Some("raw".into()),
        ..Default::default()
    };
    let a = f.load_one("ecosystem.config.js", &raw);
    assert_eq!(a.log_type, rsup_proto::app::LogType::Text);

    // Anything but "json" writes lines as they are, as in PM2, with a word.
    f.ecosystem("[{ name: 'j', script: 'a.js', log_type: 'JSON' }]");
    let loaded = f
        .load("ecosystem.config.js", &Overrides::default())
        .unwrap();
    assert_eq!(loaded.apps[0].log_type, rsup_proto::app::LogType::Text);
    assert_eq!(
        loaded.warnings,
        ["ecosystem.config.js: app \"j\": \"log_type\" is \"JSON\", which is not \"json\": lines are written as they are"]
    );
}

/// `-x` runs in fork mode, also with `-i` (which alone asks for cluster
/// mode).
#[test]
fn execute_command_flag_means_fork_mode() {
    let f = Fixture::new();
    f.write("a.js", "");
    let ov = Overrides {
        exec_mode: Some(ExecMode::Fork),
        instances: Some("2".into()),
        ..Default::default()
    };
    let a = app_from_script("a.js", &ov, &f.ctx).unwrap().apps.remove(0);
    assert_eq!(a.exec_mode, ExecMode::Fork);
    assert_eq!(a.instances, 2);
    assert!(!a.merge_logs);
}

/// Every day.js pattern is a format (PM2's log-custom test starts an app
/// with a random one); letters that are no token get a warning.
#[test]
fn any_log_date_format_is_taken() {
    let f = Fixture::new();
    f.write("a.js", "");
    let ov = Overrides {
        log_date_format: Some("YYYY asdsd Q".into()),
        ..Default::default()
    };
    let loaded = app_from_script("a.js", &ov, &f.ctx).unwrap();
    assert_eq!(
        loaded.apps[0].log_date_format.as_deref(),
        Some("%Y %P%-S%w%-S%w Q")
    );
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("\"Q\" are no date tokens"));
}
