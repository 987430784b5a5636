//! End-to-end tests: the real `rsup` binary, real Node processes, real
//! signals and sockets.

mod harness;
mod http_client;

mod config_errors;
mod control_socket;
mod crash_restart;
mod logs;
mod readiness;
mod reload;
mod reload_preload;
mod security;
mod stopping;
