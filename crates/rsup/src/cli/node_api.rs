//! `rsup node-api` (hidden): how the Node API (`require('rsup/pm2')`, in
//! npm/rsup/lib/pm2) reaches the daemon. It reads one [`Call`] as a JSON
//! line on stdin and writes the daemon's reply lines to stdout as they
//! come. So the Node side shares all the CLI does before a request leaves:
//! where the daemon lives (`RSUP_HOME`), the checks on its folder and on
//! the process listening, starting it on demand, and reading apps from
//! PM2's options and ecosystem files into complete specs.
//!
//! Every call ends with one final reply line (`done`, `error`, `pong`);
//! a failure on this side is written as an `error` reply too, so the
//! caller reads one kind of answer. A subscription instead relays the
//! daemon's events until stdin closes (the caller disconnecting or gone).

use super::client::{check_answers, connect, connect_existing, send, send_raw};
use super::commands::{context, list, load, resurrect_apps, save_apps, wait_until_stopped};
use super::operate::{cli_target, update_of};
use super::start::names_known_processes;
use crate::config::{self, Overrides};
use crate::dump;
use crate::home::Home;
use anyhow::{anyhow, bail, Context, Result};
use rsup_proto::app::{AppSpec, ProcessInfo};
use rsup_proto::control::{
    ApplyAction, ReloadOptions, Reply, Request, ScaleCount, SpecUpdate, Target,
};
use rsup_proto::framing::{encode, read_line};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Write};

/// What the Node side asks for.
#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// A request as it is: `ping` (which starts the daemon, as PM2's
    /// `connect` does), `list`, `kill`, `subscribe`.
    Send { request: Request },
    /// A subscription to the daemon that runs, never starting one: how a
    /// bus reconnects after the daemon went away (stopped, or replaced by
    /// `rsup update`). With none running, an `error` reply.
    Resubscribe { logs: bool },
    /// PM2's `start`, `restart`, `reload`, `stop` or `delete` of `target`.
    Act {
        verb: Verb,
        /// A name, an id, `all` or `/regex/`; an ecosystem file; for
        /// `start`, a script; for `start`, `restart` and `reload`, the apps
        /// themselves (an object, an array, or `{ apps: [...] }`).
        target: Value,
        /// PM2's options: for a script, its app options; for a file or
        /// apps, `env` (the environment's name) and `only`; for a reload,
        /// `parallel`.
        #[serde(default)]
        options: Map<String, Value>,
    },
    /// PM2's `scale`: `count` as `rsup scale` reads it (`N`, `+N`, `-N`).
    Scale { name: String, count: String },
    /// PM2's `dump`: the running apps written for `resurrect`, as by
    /// `rsup save [--force]`.
    Dump {
        #[serde(default)]
        force: bool,
    },
    /// PM2's `resurrect`, as `rsup resurrect`.
    Resurrect,
    /// PM2's `clearDump`, as `rsup cleardump`.
    ClearDump,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Start,
    Restart,
    Reload,
    Stop,
    Delete,
}

/// Runs one call; the exit code is 0 when its final reply is not an
/// error.
pub fn run(home: &Home) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let failed = match answer(home, &mut out) {
        Ok(failed) => failed,
        Err(e) => {
            out.write_all(&encode(&Reply::Error {
                message: format!("{e:#}"),
            }))?;
            true
        }
    };
    out.flush()?;
    Ok(i32::from(failed))
}

/// Reads the call and answers it; whether the answer was an error.
fn answer(home: &Home, out: &mut impl Write) -> Result<bool> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the call")?;
    let call: Call = serde_json::from_str(&line).context("unreadable call")?;
    match call {
        Call::Send {
            request: request @ Request::Subscribe { .. },
        } => relay_events(connect(home)?, &request, out).map(|()| false),
        Call::Resubscribe { logs } => resubscribe(home, logs, out).map(|()| false),
        Call::Send {
            request: Request::Kill,
        } => kill(home, out),
        Call::Send { request } => relay(home, &[request], out),
        Call::Act {
            verb,
            target,
            options,
        } => {
            let requests = plan(home, verb, &target, &options)?;
            relay(home, &requests, out)
        }
        Call::Scale { name, count } => {
            let count = ScaleCount::parse(&count).map_err(|e| anyhow!("scale: {e}"))?;
            relay(home, &[Request::Scale { name, count }], out)
        }
        Call::Dump { force } => {
            if let (_, None) = save_apps(home, force)? {
                bail!(
                    "no app runs: {} is left as it was (dump(true, cb) saves an empty list)",
                    dump::path(home).display()
                );
            }
            done(out, vec![])
        }
        Call::Resurrect => done(out, resurrect_apps(home, |_| {})?),
        Call::ClearDump => {
            dump::save(home, &[], true)?;
            done(out, vec![])
        }
    }
}

/// Writes the final `done` reply.
fn done(out: &mut impl Write, processes: Vec<ProcessInfo>) -> Result<bool> {
    out.write_all(&encode(&Reply::Done { processes }))?;
    Ok(false)
}

/// The requests a PM2 verb on `target` makes, read by the CLI's rules
/// (`rsup start`, `rsup stop`, ... in start.rs and operate.rs): a config
/// file's apps, processes that already run, a script.
fn plan(
    home: &Home,
    verb: Verb,
    target: &Value,
    options: &Map<String, Value>,
) -> Result<Vec<Request>> {
    let text = match target {
        Value::String(s) => s.as_str(),
        Value::Object(_) | Value::Array(_) => {
            let action = match verb {
                Verb::Start | Verb::Restart => ApplyAction::Restart,
                Verb::Reload => ApplyAction::Reload,
                Verb::Stop | Verb::Delete => {
                    bail!("stop and delete take a name, an id, \"all\" or an ecosystem file")
                }
            };
            let apps = load_apps(home, &target.to_string(), &file_overrides(options)?)?;
            return Ok(vec![apply(apps, action, options)?]);
        }
        other => bail!("expected a name, an id, a file or an object, got {other}"),
    };
    if config::is_config_file(text) {
        let ov = file_overrides(options)?;
        return match verb {
            // PM2 starts a file's apps that are not running and restarts
            // the others (startOrRestart).
            Verb::Start | Verb::Restart => Ok(vec![apply(
                load(home, text, &ov)?,
                ApplyAction::Restart,
                options,
            )?]),
            Verb::Reload => Ok(vec![apply(
                load(home, text, &ov)?,
                ApplyAction::Reload,
                options,
            )?]),
            Verb::Stop | Verb::Delete => stop_or_delete_file(home, verb, text, &ov),
        };
    }
    let update = update(options)?;
    Ok(vec![match verb {
        // What runs already is started again, as `rsup start <name>` does.
        Verb::Start if names_known_processes(home, text)? => Request::Restart {
            target: Target::parse(text),
            update,
        },
        Verb::Start => {
            // PM2's `start(script, options)`: the options are the app's,
            // but for `force`, which adds processes to a running app.
            let mut app = options.clone();
            let force = app.remove("force").is_some_and(|f| f == true);
            app.insert("script".into(), Value::String(text.into()));
            Request::Start {
                apps: load_apps(home, &Value::Object(app).to_string(), &Overrides::default())?,
                force,
            }
        }
        Verb::Restart => Request::Restart {
            target: cli_target(text)?,
            update,
        },
        Verb::Reload => Request::Reload {
            target: cli_target(text)?,
            options: reload_options(options)?,
            update,
        },
        Verb::Stop => Request::Stop {
            target: cli_target(text)?,
        },
        Verb::Delete => Request::Delete {
            target: cli_target(text)?,
        },
    }])
}

/// The apps of a file that rsup has; those it has not are passed over,
/// as PM2 and `rsup stop <file>` do.
fn stop_or_delete_file(
    home: &Home,
    verb: Verb,
    file: &str,
    ov: &Overrides,
) -> Result<Vec<Request>> {
    let names = config::app_names_in_file(std::path::Path::new(file), ov, &context(home)?)?;
    let known = list(home)?;
    let mut requests = Vec::new();
    for name in names {
        if !known.iter().any(|p| p.name == name) {
            eprintln!("rsup: {name} is not running; passed over");
            continue;
        }
        let target = Target::Name(name);
        requests.push(match verb {
            Verb::Delete => Request::Delete { target },
            _ => Request::Stop { target },
        });
    }
    Ok(requests)
}

fn apply(apps: Vec<AppSpec>, action: ApplyAction, options: &Map<String, Value>) -> Result<Request> {
    Ok(Request::Apply {
        apps,
        action,
        options: reload_options(options)?,
    })
}

/// PM2's `updateEnv`: the processes get this environment, as with
/// `--update-env`.
fn update(options: &Map<String, Value>) -> Result<SpecUpdate> {
    let update_env = match options.get("updateEnv") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => bail!("updateEnv: expected true or false, got {other}"),
    };
    update_of(update_env, None, None)
}

/// PM2's `parallel` option of a reload.
fn reload_options(options: &Map<String, Value>) -> Result<ReloadOptions> {
    let mut reload = ReloadOptions::default();
    if let Some(parallel) = options.get("parallel") {
        reload.parallel = parallel
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .with_context(|| format!("parallel: expected a positive number, got {parallel}"))?;
    }
    Ok(reload)
}

/// A file's or an apps object's options: `env` names an environment
/// (`env_<name>`), `only` picks apps by name.
fn file_overrides(options: &Map<String, Value>) -> Result<Overrides> {
    let text = |key: &str| -> Result<Option<String>> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => bail!("{key}: expected a string, got {other}"),
        }
    };
    Ok(Overrides {
        env_name: text("env")?,
        only: text("only")?,
        ..Overrides::default()
    })
}

/// Apps given as JSON, read as `rsup start -` reads them.
fn load_apps(home: &Home, json: &str, ov: &Overrides) -> Result<Vec<AppSpec>> {
    let loaded = config::load_config_text("options", json, ov, &context(home)?)?;
    warn(&loaded.warnings);
    Ok(loaded.apps)
}

/// Warnings go where the CLI's go: to stderr, which the Node side passes on.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("rsup: warning: {w}");
    }
}

/// Sends each request in turn and writes its progress as it comes, then
/// one final reply: every process the requests concerned, or the first
/// error, which ends it as in the CLI. Returns whether that reply is an
/// error.
fn relay(home: &Home, requests: &[Request], out: &mut impl Write) -> Result<bool> {
    if let [request @ Request::List { .. }] = requests {
        // As the daemon wrote it: no parsing of a long list.
        let mut line = send_raw(connect(home)?, request)?;
        line.push(b'\n');
        out.write_all(&line)?;
        return Ok(line.starts_with(br#"{"reply":"error""#));
    }
    let mut processes: Vec<ProcessInfo> = Vec::new();
    for request in requests {
        let stream = connect(home)?;
        if !matches!(request, Request::Ping) {
            check_answers(home)?;
        }
        let reply = send(stream, request, |message| {
            let _ = out.write_all(&encode(&Reply::Progress {
                message: message.to_string(),
            }));
        })?;
        match reply {
            Reply::Done { processes: more } => processes.extend(more),
            last @ (Reply::Error { .. } | Reply::Pong { .. }) => {
                out.write_all(&encode(&last))?;
                return Ok(matches!(last, Reply::Error { .. }));
            }
            other => bail!("unexpected reply from the daemon: {other:?}"),
        }
    }
    out.write_all(&encode(&Reply::Done { processes }))?;
    Ok(false)
}

/// PM2's `killDaemon`: every app stopped, then the daemon; answered once
/// the daemon is gone. Nothing to do when none runs.
fn kill(home: &Home, out: &mut impl Write) -> Result<bool> {
    let Some(stream) = connect_existing(home)? else {
        out.write_all(&encode(&Reply::Done { processes: vec![] }))?;
        return Ok(false);
    };
    let reply = send(stream, &Request::Kill, |_| {})?;
    let failed = matches!(reply, Reply::Error { .. });
    if !failed {
        wait_until_stopped(home)?;
    }
    out.write_all(&encode(&reply))?;
    Ok(failed)
}

/// A subscription to the daemon that runs; an error, and no daemon
/// started, when none does.
fn resubscribe(home: &Home, logs: bool, out: &mut impl Write) -> Result<()> {
    let stream = connect_existing(home)?.ok_or_else(|| anyhow!("no rsup daemon runs"))?;
    relay_events(stream, &Request::Subscribe { logs }, out)
}

/// Sends a subscription and copies the daemon's lines to `out` until the
/// daemon closes the connection; stdin closing ends the process.
fn relay_events(
    stream: std::os::unix::net::UnixStream,
    request: &Request,
    out: &mut impl Write,
) -> Result<()> {
    (&stream)
        .write_all(&encode(request))
        .context("subscribing to the rsup daemon")?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while read_line(&mut reader, &mut line).context("reading the rsup daemon's events")? {
        line.push(b'\n');
        out.write_all(&line)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::app::ExecMode;
    use serde_json::json;

    /// A home where no daemon runs: nothing is a known process.
    fn nowhere() -> (tempfile::TempDir, Home) {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home {
            dir: tmp.path().join("none"),
        };
        (tmp, home)
    }

    fn options(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_resubscription_starts_no_daemon() {
        let (_tmp, home) = nowhere();
        let call: Call = serde_json::from_str(r#"{"call":"resubscribe","logs":true}"#).unwrap();
        let Call::Resubscribe { logs } = call else {
            panic!("{call:?}")
        };
        let err = resubscribe(&home, logs, &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "no rsup daemon runs");
        assert!(!home.dir.exists(), "a daemon was started in {:?}", home.dir);
    }

    #[test]
    fn a_script_with_options_is_started_with_those_options() {
        let (tmp, home) = nowhere();
        let script = tmp.path().join("server.js");
        std::fs::write(&script, "").unwrap();
        let target = json!(script.to_str().unwrap());
        let opts = options(json!({"name": "api", "instances": 2, "killTimeout": 900}));
        let requests = plan(&home, Verb::Start, &target, &opts).unwrap();
        let [Request::Start { apps, force: false }] = requests.as_slice() else {
            panic!("{requests:?}")
        };
        let [app] = apps.as_slice() else {
            panic!("{apps:?}")
        };
        assert_eq!(app.name, "api");
        assert_eq!(app.instances, 2);
        assert_eq!(app.exec_mode, ExecMode::Cluster);
        assert_eq!(app.kill_timeout_ms, 900);
        assert_eq!(app.script, script.to_str().unwrap());
        // `force` is start's, not the app's.
        let opts = options(json!({"name": "api", "force": true}));
        let requests = plan(&home, Verb::Start, &target, &opts).unwrap();
        assert!(
            matches!(requests.as_slice(), [Request::Start { force: true, .. }]),
            "{requests:?}"
        );
    }

    #[test]
    fn apps_given_as_objects_start_or_restart_as_a_config_file_would() {
        let (tmp, home) = nowhere();
        let script = tmp.path().join("a.js");
        std::fs::write(&script, "").unwrap();
        let apps = json!({"apps": [
            {"name": "a", "script": script.to_str().unwrap(), "env_production": {"X": "1"}},
        ]});
        let opts = options(json!({"env": "production"}));
        let requests = plan(&home, Verb::Start, &apps, &opts).unwrap();
        let [Request::Apply { apps, action, .. }] = requests.as_slice() else {
            panic!("{requests:?}")
        };
        assert_eq!(*action, ApplyAction::Restart);
        assert_eq!(apps[0].env.get("X").map(String::as_str), Some("1"));
        let array = json!([{"script": script.to_str().unwrap()}]);
        let requests = plan(&home, Verb::Reload, &array, &Map::new());
        assert!(matches!(
            requests.unwrap().as_slice(),
            [Request::Apply {
                action: ApplyAction::Reload,
                ..
            }]
        ));
    }

    #[test]
    fn names_ids_and_patterns_are_targets_and_update_env_takes_this_environment() {
        let (_tmp, home) = nowhere();
        let stop = plan(&home, Verb::Stop, &json!("3"), &Map::new()).unwrap();
        assert_eq!(
            stop,
            [Request::Stop {
                target: Target::Id(3)
            }]
        );
        let reload = plan(
            &home,
            Verb::Reload,
            &json!("/^api/"),
            &options(json!({"parallel": 2})),
        );
        assert_eq!(
            reload.unwrap(),
            [Request::Reload {
                target: Target::Regex("^api".into()),
                options: ReloadOptions {
                    parallel: 2,
                    strict_ready: false
                },
                update: SpecUpdate::default(),
            }]
        );
        let delete = plan(&home, Verb::Delete, &json!("all"), &Map::new()).unwrap();
        assert_eq!(
            delete,
            [Request::Delete {
                target: Target::All
            }]
        );
        let opts = options(json!({"updateEnv": true}));
        let restart = plan(&home, Verb::Restart, &json!("api"), &opts).unwrap();
        let [Request::Restart { update, .. }] = restart.as_slice() else {
            panic!("{restart:?}")
        };
        let env = update.inherited_env.as_ref().expect("the environment");
        assert_eq!(env.get("PATH"), std::env::var("PATH").ok().as_ref());
    }

    #[test]
    fn bad_calls_are_refused_with_what_was_wrong() {
        let (_tmp, home) = nowhere();
        let err = plan(&home, Verb::Stop, &json!({"script": "a.js"}), &Map::new()).unwrap_err();
        assert!(err.to_string().contains("stop and delete take"), "{err}");
        let err = plan(&home, Verb::Restart, &json!(true), &Map::new()).unwrap_err();
        assert!(err.to_string().contains("got true"), "{err}");
        let bad = options(json!({"parallel": 0}));
        let err = plan(&home, Verb::Reload, &json!("api"), &bad).unwrap_err();
        assert!(err.to_string().contains("parallel"), "{err}");
        let bad = options(json!({"env": 3}));
        let err = plan(&home, Verb::Start, &json!([{"script": "a.js"}]), &bad).unwrap_err();
        assert!(err.to_string().contains("env: expected a string"), "{err}");
        let bad = options(json!({"updateEnv": "yes"}));
        let err = plan(&home, Verb::Restart, &json!("api"), &bad).unwrap_err();
        assert!(err.to_string().contains("updateEnv"), "{err}");
        assert!(
            serde_json::from_str::<Call>(r#"{"call":"act","verb":"scale","target":"a"}"#).is_err()
        );
    }
}
