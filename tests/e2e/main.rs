//! End-to-end tests: the real `rsup` binary, real Node processes, real
//! signals and sockets.

mod harness;
mod http_client;

mod apps;
mod config_errors;
mod control_socket;
mod crash_restart;
mod cron_restart;
mod instance_vars;
mod kubernetes;
mod log_loss;
mod log_rotation;
mod logs;
mod long_lived;
mod module_conf;
mod monit;
mod namespaces;
mod pid_files;
mod pm2_cli;
mod pm2_list;
mod process_limits;
mod readiness;
mod recovery;
mod reload;
mod reload_own_port;
mod reload_preload;
mod resources;
mod save_resurrect;
mod security;
mod shared_port;
mod signal_reset;
mod startup;
mod stopping;
mod trust;
mod update;
mod watch;
