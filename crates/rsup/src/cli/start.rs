//! `rsup start`: each argument in turn, read as PM2 reads it (API.start,
//! API._startScript): a config file or `-` starts what is new and restarts
//! what runs; a name, id or `/regex/` of processes rsup has (and no file of
//! that name) starts them again; anything else is a script to start.

use super::args::StartArgs;
use super::client::{connect_existing, send};
use super::commands::{list, load, overrides, print_table, report_failures, request, STDIN};
use super::operate::{cli_target, update_of};
use crate::config::{self, Overrides};
use crate::daemon::HealthOptions;
use crate::home::Home;
use anyhow::{bail, Result};
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply, Request, Target};

/// PM2's default when `start` is given nothing.
const DEFAULT_CONFIG: &str = "ecosystem.config.js";

pub fn start(home: &Home, args: StartArgs) -> Result<i32> {
    let scripts = if args.scripts.is_empty() {
        vec![DEFAULT_CONFIG.to_string()]
    } else {
        args.scripts.clone()
    };
    if args.name.is_some() && scripts.len() > 1 {
        bail!(
            "--name names one app, but {} scripts are given; start them one by one",
            scripts.len()
        );
    }
    if scripts.iter().filter(|s| *s == STDIN).count() > 1 {
        bail!("-: stdin can be read once; give \"-\" once");
    }
    let ov = overrides(&args);
    if args.no_daemon {
        let health = health_options(&args)?;
        let mut apps = Vec::new();
        for script in &scripts {
            apps.extend(load(home, script, &ov)?);
        }
        crate::daemon::become_reaper_if_pid1();
        crate::daemon::run(home.clone(), apps, health)?;
        return Ok(0);
    }
    if args.health_port.is_some() || args.drain_delay.is_some() {
        bail!(
            "--health-port and --drain-delay go with --no-daemon; for the daemon, set RSUP_HEALTH_PORT (and RSUP_DRAIN_DELAY) before it starts"
        );
    }
    // One after another, as PM2 does; the first failure ends it.
    let mut acted = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        match start_one(home, script, &args, &ov) {
            Ok(procs) => acted.extend(procs),
            // The table only when something was started: a config that
            // does not read must not even start the daemon.
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                print_table(&list(home)?);
                return Err(e);
            }
        }
    }
    print_table(&list(home)?);
    Ok(report_failures(&acted))
}

/// The foreground's health endpoints: each flag, or else the variable the
/// daemon reads.
fn health_options(args: &StartArgs) -> Result<Option<HealthOptions>> {
    HealthOptions::from_flags_or_env(args.health_port.as_deref(), args.drain_delay)
        .map_err(anyhow::Error::msg)
}

fn start_one(
    home: &Home,
    script: &str,
    args: &StartArgs,
    ov: &Overrides,
) -> Result<Vec<ProcessInfo>> {
    if script == STDIN || config::is_config_file(script) {
        let apps = load(home, script, ov)?;
        return request(
            home,
            &Request::Apply {
                apps,
                action: ApplyAction::Restart,
                options: ReloadOptions::default(),
            },
        );
    }
    if names_known_processes(home, script)? {
        warn_flags_kept(script, ov);
        let update = update_of(
            args.update_env,
            args.name.as_deref(),
            args.node_args.as_deref(),
        )?;
        return request(
            home,
            &Request::Restart {
                target: Target::parse(script),
                update,
            },
        );
    }
    let apps = load(home, script, ov)?;
    request(
        home,
        &Request::Start {
            apps,
            force: args.force,
        },
    )
}

/// Whether `arg` is no file here but names processes the daemon runs (a
/// name, an id, `all`, `/regex/`); false when no daemon runs.
pub(super) fn names_known_processes(home: &Home, arg: &str) -> Result<bool> {
    let target = cli_target(arg)?;
    if matches!(target, Target::Script(_)) || std::path::Path::new(arg).exists() {
        return Ok(false);
    }
    let Some(stream) = connect_existing(home)? else {
        return Ok(false);
    };
    let reply = send(
        stream,
        &Request::List {
            target: Some(target),
            pm2: false,
        },
        |_| {},
    )?;
    Ok(matches!(reply, Reply::Done { processes } if !processes.is_empty()))
}

/// `start <name>` of a running app starts it again with its own options:
/// only --name, --node-args and --update-env change them, as with restart.
fn warn_flags_kept(target: &str, ov: &Overrides) {
    let ignored = Overrides {
        name: None,
        node_args: None,
        ..ov.clone()
    };
    if ignored != Overrides::default() {
        eprintln!(
            "rsup: warning: {target} runs already: it starts again with its own options; \
             of the flags given only --name, --node-args and --update-env apply \
             (change the rest in its config file and use startOrRestart)"
        );
    }
}
