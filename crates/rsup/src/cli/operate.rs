//! `stop`, `restart`, `reload` and `delete` of several targets, one after
//! another as PM2 does (the first failure ends it). A target is what the
//! daemon resolves (a name, an id, `/regex/`, `all`), a script (every
//! process running it), or a config file or `-` (its apps, read from the
//! file or stdin): restart and reload of a config apply its options and
//! start its apps that do not run; stop and delete act on those that do.

use super::args::{FileFlags, UpdateFlags};
use super::commands::{
    context, list, load, print_table, read_stdin, report_failures, request, STDIN,
};
use crate::config::{self, Overrides};
use crate::home::Home;
use anyhow::{bail, Result};
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{ApplyAction, ReloadOptions, Request, SpecUpdate, Target};
use std::path::Path;

pub enum Verb {
    Stop,
    Restart(UpdateFlags),
    Reload(UpdateFlags, ReloadOptions),
    Delete,
}

/// What one target's operation gave: the processes, and whether those that
/// failed to come up make the command fail (a config's apps, as with
/// startOrRestart).
struct Acted {
    processes: Vec<ProcessInfo>,
    report_failures: bool,
}

pub fn operate(home: &Home, verb: Verb, targets: &[String], file: &FileFlags) -> Result<i32> {
    if targets.iter().filter(|t| *t == STDIN).count() > 1 {
        bail!("-: stdin can be read once; give \"-\" once");
    }
    let mut reported = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        match operate_one(home, &verb, target, file) {
            Ok(acted) if acted.report_failures => reported.extend(acted.processes),
            Ok(_) => {}
            // The table only when something was done.
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                print_table(&list(home)?);
                return Err(e);
            }
        }
    }
    print_table(&list(home)?);
    Ok(report_failures(&reported))
}

fn operate_one(home: &Home, verb: &Verb, target: &str, file: &FileFlags) -> Result<Acted> {
    if target == STDIN || config::is_config_file(target) {
        return on_config(home, verb, target, file);
    }
    // PM2: "Using --env [env] without passing the ecosystem.config.js does
    // not work".
    if let Some(env) = &file.env {
        bail!("--env {env} applies to config files, and {target} is not one");
    }
    if file.only.is_some() {
        bail!("--only applies to config files, and {target} is not one");
    }
    let target = cli_target(target)?;
    let req = match verb {
        Verb::Stop => Request::Stop { target },
        Verb::Delete => Request::Delete { target },
        Verb::Restart(u) => Request::Restart {
            target,
            update: update_from(u)?,
        },
        Verb::Reload(u, options) => Request::Reload {
            target,
            options: *options,
            update: update_from(u)?,
        },
    };
    Ok(Acted {
        processes: request(home, &req)?,
        report_failures: false,
    })
}

/// A config file's (or stdin's) apps.
fn on_config(home: &Home, verb: &Verb, target: &str, file: &FileFlags) -> Result<Acted> {
    let mut ov = Overrides {
        env_name: file.env.clone(),
        only: file.only.clone(),
        ..Overrides::default()
    };
    let (u, action, options) = match verb {
        Verb::Restart(u) => (u, ApplyAction::Restart, ReloadOptions::default()),
        Verb::Reload(u, options) => (u, ApplyAction::Reload, *options),
        Verb::Stop | Verb::Delete => return stop_or_delete_config(home, verb, target, &ov),
    };
    // The file's options are applied whole, its environment included (PM2
    // takes `--update-env` as given for a config); --name and --node-args
    // apply over it.
    ov.name = u.name.clone();
    ov.node_args = u.node_args.clone();
    let apps = load(home, target, &ov)?;
    let processes = request(
        home,
        &Request::Apply {
            apps,
            action,
            options,
        },
    )?;
    Ok(Acted {
        processes,
        report_failures: true,
    })
}

/// Stops or deletes the config's apps that rsup has; those it has not are
/// passed over, as PM2 does.
fn stop_or_delete_config(home: &Home, verb: &Verb, target: &str, ov: &Overrides) -> Result<Acted> {
    let ctx = context(home)?;
    let names = if target == STDIN {
        config::app_names_in_text("stdin", &read_stdin()?, ov, &ctx)?
    } else {
        config::app_names_in_file(Path::new(target), ov, &ctx)?
    };
    let known = list(home)?;
    let mut processes = Vec::new();
    for name in names {
        if !known.iter().any(|p| p.name == name) {
            println!("[rsup] {name} is not running; passed over");
            continue;
        }
        let target = Target::Name(name);
        let req = match verb {
            Verb::Delete => Request::Delete { target },
            _ => Request::Stop { target },
        };
        processes.extend(request(home, &req)?);
    }
    Ok(Acted {
        processes,
        report_failures: false,
    })
}

/// A target as typed, with what only the CLI can tell: a path (it holds a
/// `/`, which no app name does, or names a file here) is a script, and
/// means every process running it, as in PM2.
pub fn cli_target(arg: &str) -> Result<Target> {
    let parsed = Target::parse(arg);
    match &parsed {
        Target::Name(name) if name.contains('/') || Path::new(name).is_file() => Ok(
            Target::Script(config::absolute(&std::env::current_dir()?, Path::new(name))),
        ),
        _ => Ok(parsed),
    }
}

fn update_from(u: &UpdateFlags) -> Result<SpecUpdate> {
    update_of(u.update_env, u.name.as_deref(), u.node_args.as_deref())
}

/// The options `--update-env`, `--name` and `--node-args` change.
pub fn update_of(
    update_env: bool,
    name: Option<&str>,
    node_args: Option<&str>,
) -> Result<SpecUpdate> {
    if let Some(name) = name {
        if let Err(why) = config::name::check(name) {
            bail!("--name {}: invalid name: {why}", config::name::shown(name));
        }
    }
    let node_args = match node_args.map(str::trim) {
        None | Some("") => None,
        // PM2 removes an option given as "null".
        Some("null") => Some(Vec::new()),
        Some(text) => match config::split_words(text) {
            Ok(words) => Some(words),
            Err(e) => bail!("--node-args: {e}"),
        },
    };
    let inherited_env = if update_env {
        Some(config::inherited_env(&std::env::vars().collect()))
    } else {
        None
    };
    Ok(SpecUpdate {
        name: name.map(str::to_string),
        node_args,
        inherited_env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_args_null_clears_and_empty_keeps() {
        let u = update_of(false, None, Some("null")).unwrap();
        assert_eq!(u.node_args, Some(vec![]));
        assert!(update_of(false, None, Some(" ")).unwrap().is_empty());
        let u = update_of(false, None, Some("--harmony --title 'a b'")).unwrap();
        assert_eq!(u.node_args.unwrap(), ["--harmony", "--title", "a b"]);
        assert!(update_of(false, None, Some("'open")).is_err());
        assert!(update_of(false, Some("a/b"), None).is_err());
    }

    #[test]
    fn paths_are_scripts_and_the_rest_is_what_the_daemon_resolves() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            cli_target("./missing/app.js").unwrap(),
            Target::Script(cwd.join("missing/app.js"))
        );
        assert_eq!(cli_target("api").unwrap(), Target::Name("api".into()));
        assert_eq!(cli_target("3").unwrap(), Target::Id(3));
        assert_eq!(cli_target("/^a/").unwrap(), Target::Regex("^a".into()));
    }
}
