//! The supervisor daemon: owns the apps' processes and answers the CLI on
//! the control socket.
//!
//! Where each lifecycle step lives:
//! - the daemon's own start and end, signals: [`lifecycle`]
//! - accepting clients, checking who they are: [`server`]
//! - what each request does (start, stop, reload, …): [`actions`]
//! - the apps by name, and which processes a target names: [`apps`]
//! - one app, the owner of its instances and sockets, running one
//!   operation at a time: [`app`]
//! - replacing an app's instances on reload: [`reload`]
//! - one instance's life (launch → ready → exit → restart): [`instance`]
//! - building the child process and its channels: [`spawn`], [`channels`],
//!   [`process`]
//! - listening sockets shared by an app's instances: [`sockets`]
//! - stopping a process (signal, timeout, SIGKILL): [`stop`]
//! - crash restarts and backoff: [`restart_policy`]
//! - log files: [`log_paths`], [`log_writer`]; CPU/memory: [`metrics`]
//! - the state on disk, and recovering after a killed daemon:
//!   [`state_file`], [`recover`]

mod actions;
mod app;
mod apps;
mod channels;
mod instance;
mod lifecycle;
mod log_paths;
mod log_writer;
mod metrics;
mod own_listeners;
mod pid1;
mod preload;
mod process;
mod recover;
mod reload;
mod restart_policy;
mod server;
mod sockets;
mod spawn;
mod state_file;
mod stop;

pub use instance::now_ms;
pub use lifecycle::{open_daemon_log, run};
pub use pid1::become_reaper_if_pid1;
