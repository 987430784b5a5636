//! The command line: parses arguments, reads config files, talks to the
//! daemon and prints the answers.

mod args;
mod client;
mod commands;
mod init;
mod inspect;
mod log_baseline;
mod log_verbs;
pub mod logs;
mod module_conf;
mod monit;
mod node_api;
mod operate;
pub mod render;
mod start;
mod startup;
mod unknown;
mod update;

use clap::Parser;

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => match unknown::explain(&e, &lossy(&argv)) {
            Some(line) => {
                eprintln!("{line}");
                return 2;
            }
            None => e.exit(),
        },
    };
    if !runs_the_daemon(&cli.command) {
        die_quietly_on_a_closed_pipe();
    }
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rsup: {e:#}");
            1
        }
    }
}

/// Whether this process becomes the daemon (`rsup daemon`, or a start in
/// the foreground), which must outlive any client that hangs up.
fn runs_the_daemon(command: &args::Command) -> bool {
    match command {
        args::Command::Daemon { .. } | args::Command::Keeper { .. } => true,
        args::Command::Start(start) => start.no_daemon,
        _ => false,
    }
}

/// As other command-line tools, a command whose output goes to a reader
/// that stopped reading (`rsup ls | head -1`) ends there, silently,
/// rather than failing on the broken pipe.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default, before any
    // thread of ours exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn lossy(argv: &[std::ffi::OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
