//! Ecosystem files are outside input: whatever JSON they hold, reading
//! them gives apps or one error, never a panic.

use super::{load_config_file, Context, Overrides};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

/// Keys PM2 files use, plus a few no file should: values of any type go
/// under each, so every field's reader meets wrong types.
const KEYS: &[&str] = &[
    "name",
    "script",
    "args",
    "cwd",
    "instances",
    "exec_mode",
    "env",
    "env_production",
    "wait_ready",
    "listen_timeout",
    "kill_timeout",
    "kill_signal",
    "shutdown_with_message",
    "autorestart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "interpreter",
    "node_args",
    "out_file",
    "error_file",
    "merge_logs",
    "log_date_format",
    "time",
    "log_file",
    "log",
    "log_type",
    "instance_var",
    "treekill",
    "watch",
    "unknown_key",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 ./'\"-]{0,12}".prop_map(Value::from),
        Just(Value::from("app.js")),
        Just(Value::from("max")),
        Just(Value::from("-1")),
        Just(Value::from("SIGTERM")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((select(KEYS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn app() -> impl Strategy<Value = Value> {
    prop::collection::vec((select(KEYS), value()), 0..10).prop_map(|kv| {
        let mut obj: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // Most apps name a script that exists, so resolution goes deep.
        obj.entry("script").or_insert_with(|| Value::from("app.js"));
        Value::Object(obj)
    })
}

fn file() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(app(), 0..3).prop_map(|apps| serde_json::json!({ "apps": apps })),
        prop::collection::vec(app(), 0..3).prop_map(Value::Array),
        app(),
        value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_json_gives_apps_or_one_line_of_error(content in file()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "").unwrap();
        let path = dir.path().join("ecosystem.json");
        std::fs::write(&path, serde_json::to_vec(&content).unwrap()).unwrap();
        let ctx = Context {
            cwd: dir.path().to_path_buf(),
            env: [("PATH".to_string(), std::env::var("PATH").unwrap_or_default())].into(),
            cpus: 2,
            logs_dir: dir.path().join("logs"),
        };
        match load_config_file(&path, &Overrides::default(), &ctx) {
            Ok(loaded) => {
                for app in loaded.apps {
                    prop_assert!(!app.name.is_empty());
                    prop_assert!(app.instances >= 1);
                }
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.contains('\n'), "{}", text);
                prop_assert!(text.starts_with("ecosystem.json") || text.contains("ecosystem.json"), "{}", text);
            }
        }
    }
}
