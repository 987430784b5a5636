//! One clear line for a command or flag rsup does not have. clap's own
//! tips mislead PM2 users: for a PM2 flag it lacks it offers `-- --flag`
//! (which would hand the flag to the app), and for a PM2 command the
//! nearest rsup one.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;

use super::args::Cli;

/// PM2's commands (lib/binaries/CLI.js).
const PM2_COMMANDS: &[&str] = &[
    "attach",
    "autoinstall",
    "backward",
    "cleardump",
    "conf",
    "config",
    "create",
    "dash",
    "dashboard",
    "deepUpdate",
    "delete",
    "deploy",
    "desc",
    "describe",
    "dump",
    "ecosystem",
    "env",
    "examples",
    "expose",
    "flush",
    "forward",
    "id",
    "imonit",
    "info",
    "init",
    "inspect",
    "install-otel",
    "jlist",
    "kill",
    "l",
    "link",
    "list",
    "login",
    "logout",
    "logrotate",
    "logs",
    "module:generate",
    "module:install",
    "module:publish",
    "module:uninstall",
    "module:update",
    "monit",
    "monitor",
    "multiset",
    "open",
    "package",
    "pid",
    "ping",
    "plus",
    "prettylist",
    "profile:cpu",
    "profile:mem",
    "ps",
    "publish",
    "pull",
    "register",
    "reload",
    "reloadLogs",
    "report",
    "reset",
    "restart",
    "resurrect",
    "save",
    "scale",
    "send",
    "sendSignal",
    "serve",
    "show",
    "slist",
    "start",
    "startOrGracefulReload",
    "startOrReload",
    "startOrRestart",
    "startup",
    "status",
    "sysinfos",
    "stop",
    "trigger",
    "uninstall-otel",
    "unlink",
    "unmonitor",
    "unset",
    "unstartup",
    "update",
    "updatePM2",
];

/// PM2's commands that rsup has under another name.
const RENAMED: &[(&str, &str)] = &[("l", "list"), ("ps", "list")];

/// PM2's flags, long and short (lib/binaries/CLI.js).
const PM2_FLAGS: &[&str] = &[
    "--version",
    "--silent",
    "--ext",
    "--name",
    "--mini-list",
    "--interpreter",
    "--interpreter-args",
    "--node-args",
    "--output",
    "--error",
    "--log",
    "--filter-env",
    "--log-type",
    "--log-date-format",
    "--time",
    "--disable-logs",
    "--env",
    "--update-env",
    "--force",
    "--instances",
    "--parallel",
    "--shutdown-with-message",
    "--pid",
    "--kill-timeout",
    "--listen-timeout",
    "--max-memory-restart",
    "--restart-delay",
    "--exp-backoff-restart-delay",
    "--execute-command",
    "--max-restarts",
    "--user",
    "--uid",
    "--gid",
    "--namespace",
    "--cwd",
    "--hp",
    "--wait-ip",
    "--service-name",
    "--cron",
    "--cron-restart",
    "--write",
    "--no-daemon",
    "--source-map-support",
    "--only",
    "--disable-source-map-support",
    "--wait-ready",
    "--merge-logs",
    "--watch",
    "--ignore-watch",
    "--watch-delay",
    "--no-color",
    "--no-vizion",
    "--no-autostart",
    "--no-autorestart",
    "--stop-exit-codes",
    "--no-treekill",
    "--no-pmx",
    "--no-automation",
    "--trace",
    "--disable-trace",
    "--sort",
    "--attach",
    "--v8",
    "--event-loop-inspector",
    "--deep-monitoring",
    "--fresh",
    "--daemon",
    "--container",
    "--dist",
    "--image-name",
    "--node-version",
    "--dockerdaemon",
    "--lines",
    "--timestamp",
    "--nostream",
    "--raw",
    "--json",
    "--format",
    "--err",
    "--out",
    "--highlight",
    "-v",
    "-s",
    "-n",
    "-m",
    "-o",
    "-e",
    "-l",
    "-a",
    "-f",
    "-i",
    "-p",
    "-k",
    "-x",
    "-u",
    "-c",
    "-w",
];

/// The line to print instead of clap's error, when there is a better one.
pub fn explain(err: &clap::Error, argv: &[String]) -> Option<String> {
    // clap lists several suggestions from the least to the most likely.
    let text = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.last().cloned(),
        _ => None,
    };
    match err.kind() {
        ErrorKind::InvalidSubcommand => {
            let typed = text(ContextKind::InvalidSubcommand)?;
            Some(unknown_command(
                &typed,
                text(ContextKind::SuggestedSubcommand),
            ))
        }
        ErrorKind::UnknownArgument => {
            let typed = text(ContextKind::InvalidArg)?;
            Some(unknown_flag(&typed, verb(argv)))
        }
        _ => None,
    }
}

fn unknown_command(typed: &str, suggested: Option<String>) -> String {
    if let Some((_, ours)) = RENAMED.iter().find(|(pm2, _)| *pm2 == typed) {
        return format!("rsup: PM2's {typed} is rsup {ours}");
    }
    if PM2_COMMANDS.contains(&typed) {
        return format!(
            "rsup: {typed} is a PM2 command that rsup does not support (rsup --help lists the commands it has)"
        );
    }
    match suggested {
        Some(s) => format!("rsup: unknown command {typed}; did you mean {s}?"),
        None => format!("rsup: unknown command {typed} (rsup --help lists the commands)"),
    }
}

fn unknown_flag(typed: &str, verb: Option<&str>) -> String {
    let flag = typed.split_once('=').map_or(typed, |(f, _)| f);
    let on = verb.map_or_else(String::new, |v| format!(" {v}"));
    if rsup_has_flag(flag) {
        return format!("rsup:{on} does not take {flag} (rsup{on} --help lists its flags)");
    }
    if PM2_FLAGS.contains(&flag) {
        return format!(
            "rsup: {flag} is a PM2 flag that rsup does not support (rsup{on} --help lists the flags it has)"
        );
    }
    let after = if verb == Some("start") {
        "; arguments for the app go after --, as in rsup start app.js -- --port 80"
    } else {
        ""
    };
    format!("rsup:{on} has no flag {flag} (rsup{on} --help lists its flags){after}")
}

/// The command typed: the first argument, unless it is a flag.
fn verb(argv: &[String]) -> Option<&str> {
    argv.get(1)
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
}

/// Whether some rsup command has the flag (`--name` or `-n`).
fn rsup_has_flag(flag: &str) -> bool {
    let cli = Cli::command();
    let found = cli.get_subcommands().any(|cmd| {
        cmd.get_arguments().any(|arg| match flag.strip_prefix("--") {
            Some(long) => arg.get_long() == Some(long),
            None => {
                let mut chars = flag.chars().skip(1);
                matches!((chars.next(), chars.next()), (Some(c), None) if arg.get_short() == Some(c))
            }
        })
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn line(args: &[&str]) -> String {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let err = Cli::try_parse_from(&argv).unwrap_err();
        explain(&err, &argv).unwrap_or_else(|| err.to_string())
    }

    #[test]
    fn pm2_flags_rsup_lacks_are_named_as_such() {
        assert_eq!(
            line(&["rsup", "start", "app.js", "--container"]),
            "rsup: --container is a PM2 flag that rsup does not support (rsup start --help lists the flags it has)"
        );
        assert!(line(&["rsup", "start", "app.js", "--image-name=web"])
            .starts_with("rsup: --image-name is a PM2 flag"));
    }

    #[test]
    fn a_flag_of_another_command_is_said_to_be_so() {
        assert_eq!(
            line(&["rsup", "stop", "api", "--node-args", "x"]),
            "rsup: stop does not take --node-args (rsup stop --help lists its flags)"
        );
    }

    #[test]
    fn other_flags_of_start_point_at_the_apps_arguments() {
        let l = line(&["rsup", "start", "app.js", "--port", "80"]);
        assert!(l.starts_with("rsup: start has no flag --port"), "{l}");
        assert!(l.contains("-- --port 80"), "{l}");
    }

    #[test]
    fn pm2_commands_rsup_lacks_are_named_as_such() {
        assert_eq!(
            line(&["rsup", "plus"]),
            "rsup: plus is a PM2 command that rsup does not support (rsup --help lists the commands it has)"
        );
        assert_eq!(line(&["rsup", "ps"]), "rsup: PM2's ps is rsup list");
        assert_eq!(
            line(&["rsup", "strat"]),
            "rsup: unknown command strat; did you mean start?"
        );
    }
}
