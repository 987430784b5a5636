//! End-to-end tests: the real `rsup` binary, real Node processes, real
//! signals and sockets.

mod harness;

mod config_errors;
mod crash_restart;
mod logs;
mod readiness;
mod security;
mod stopping;
