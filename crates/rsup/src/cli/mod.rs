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
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rsup: {e:#}");
            1
        }
    }
}

fn lossy(argv: &[std::ffi::OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
