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
use super::commands::{context, wait_until_stopped};
use super::start::names_known_processes;
use crate::config::{self, Overrides};
use crate::home::Home;
use anyhow::{bail, Context, Result};
use rsup_proto::app::{AppSpec, ProcessInfo};
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply, Request, SpecUpdate, Target};
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
        } => relay_events(home, &request, out).map(|()| false),
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
    }
}

/// The requests a PM2 verb on `target` makes, with the CLI's rules for
/// telling a file, a script and processes apart.
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
            return Ok(vec![apply(apps, action, options)]);
        }
        other => bail!("expected a name, an id, a file or an object, got {other}"),
    };
    // What runs already is started again, as `rsup start <name>` does; a
    // name that looks like a file's is the processes' when they run.
    let maybe_file = config::is_config_file(text);
    let known = (verb == Verb::Start || maybe_file) && names_known_processes(home, text)?;
    let file = maybe_file && !known;
    let t = Target::parse(text);
    Ok(match verb {
        Verb::Start if known => vec![Request::Restart {
            target: t,
            update: SpecUpdate::default(),
        }],
        // PM2 starts a file's apps that are not running and restarts the
        // others (startOrRestart).
        Verb::Start | Verb::Restart if file => {
            vec![apply(
                load_file(home, text, options)?,
                ApplyAction::Restart,
                options,
            )]
        }
        Verb::Reload if file => {
            vec![apply(
                load_file(home, text, options)?,
                ApplyAction::Reload,
                options,
            )]
        }
        Verb::Stop | Verb::Delete if file => load_file(home, text, options)?
            .into_iter()
            .map(|app| {
                let target = Target::Name(app.name);
                match verb {
                    Verb::Stop => Request::Stop { target },
                    _ => Request::Delete { target },
                }
            })
            .collect(),
        Verb::Start => {
            // PM2's `start(script, options)`: the options are the app's.
            let mut app = options.clone();
            app.insert("script".into(), Value::String(text.into()));
            vec![Request::Start {
                apps: load_apps(home, &Value::Object(app).to_string(), &Overrides::default())?,
                force: false,
            }]
        }
        Verb::Restart => vec![Request::Restart {
            target: t,
            update: SpecUpdate::default(),
        }],
        Verb::Reload => vec![Request::Reload {
            target: t,
            update: SpecUpdate::default(),
            options: reload_options(options)?,
        }],
        Verb::Stop => vec![Request::Stop { target: t }],
        Verb::Delete => vec![Request::Delete { target: t }],
    })
}

fn apply(apps: Vec<AppSpec>, action: ApplyAction, options: &Map<String, Value>) -> Request {
    Request::Apply {
        apps,
        action,
        options: reload_options(options).unwrap_or_default(),
    }
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

fn load_file(home: &Home, file: &str, options: &Map<String, Value>) -> Result<Vec<AppSpec>> {
    let loaded = config::load_config_file(
        std::path::Path::new(file),
        &file_overrides(options)?,
        &context(home)?,
    )?;
    warn(&loaded.warnings);
    Ok(loaded.apps)
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
/// one final reply: every process the requests concerned. Several requests
/// act on the apps of a file, and as in PM2 one that fails (an app of the
/// file that does not run) is a warning; the call fails only when every
/// request did. Returns whether the final reply is an error.
fn relay(home: &Home, requests: &[Request], out: &mut impl Write) -> Result<bool> {
    if let [request @ Request::List { .. }] = requests {
        // As the daemon wrote it: no parsing of a long list.
        let mut line = send_raw(connect(home)?, request)?;
        line.push(b'\n');
        out.write_all(&line)?;
        return Ok(line.starts_with(br#"{"reply":"error""#));
    }
    let mut processes: Vec<ProcessInfo> = Vec::new();
    let mut errors = Vec::new();
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
            Reply::Error { message } => errors.push(message),
            pong @ Reply::Pong { .. } if requests.len() == 1 => {
                out.write_all(&encode(&pong))?;
                return Ok(false);
            }
            other => bail!("unexpected reply from the daemon: {other:?}"),
        }
    }
    let failed = errors.len() == requests.len();
    let last = if failed {
        Reply::Error {
            message: errors.join("\n"),
        }
    } else {
        warn(&errors);
        Reply::Done { processes }
    };
    out.write_all(&encode(&last))?;
    Ok(failed)
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

/// Sends a subscription and copies the daemon's lines to `out` until the
/// daemon closes the connection; stdin closing ends the process.
fn relay_events(home: &Home, request: &Request, out: &mut impl Write) -> Result<()> {
    let stream = connect(home)?;
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
    fn a_script_with_options_is_started_with_those_options() {
        let (tmp, home) = nowhere();
        let script = tmp.path().join("server.js");
        std::fs::write(&script, "").unwrap();
        let target = json!(script.to_str().unwrap());
        let opts = options(json!({"name": "api", "instances": 2, "killTimeout": 900}));
        let requests = plan(&home, Verb::Start, &target, &opts).unwrap();
        let [Request::Start { apps, .. }] = requests.as_slice() else {
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
    fn names_ids_and_patterns_are_targets() {
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
    }

    #[test]
    fn the_apps_of_a_file_are_stopped_by_name() {
        let (tmp, home) = nowhere();
        let file = tmp.path().join("ecosystem.json");
        for script in ["a.js", "b.js"] {
            std::fs::write(tmp.path().join(script), "").unwrap();
        }
        std::fs::write(
            &file,
            r#"{"apps": [{"name": "a", "script": "a.js"}, {"name": "b", "script": "b.js"}]}"#,
        )
        .unwrap();
        let stop = plan(
            &home,
            Verb::Delete,
            &json!(file.to_str().unwrap()),
            &Map::new(),
        );
        assert_eq!(
            stop.unwrap(),
            [
                Request::Delete {
                    target: Target::Name("a".into())
                },
                Request::Delete {
                    target: Target::Name("b".into())
                }
            ]
        );
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
        assert!(
            serde_json::from_str::<Call>(r#"{"call":"act","verb":"scale","target":"a"}"#).is_err()
        );
    }
}
