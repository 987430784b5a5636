//! `rsup`: the CLI and, with `rsup daemon`, the supervisor daemon itself.

mod cli;
mod config;
mod cron_pattern;
mod daemon;
mod dump;
mod home;
mod keeper;
mod lines;
mod log_tail;
mod private_file;
mod rotation_settings;
#[cfg(test)]
mod test_support;

fn main() {
    std::process::exit(cli::main());
}
