//! The command line: parses arguments, reads config files, talks to the
//! daemon and prints the answers.

mod args;
mod client;
mod commands;
mod inspect;
mod log_verbs;
pub mod logs;
mod monit;
mod node_api;
pub mod render;
mod startup;
mod update;

use clap::Parser;

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = args::Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rsup: {e:#}");
            1
        }
    }
}
