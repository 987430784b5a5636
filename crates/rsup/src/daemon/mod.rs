//! The supervisor daemon: owns the apps' processes and answers the CLI on
//! the control socket.
//!
//! Where each lifecycle step lives:
//! - the daemon's own start and end, signals: [`lifecycle`]; its
//!   descriptors (inherited, limit, reserve): [`descriptors`]
//! - accepting clients, checking who they are: [`server`]
//! - what each request does (start, stop, reload, …): [`actions`]; the
//!   lists: `actions/list.rs`, and `jlist`'s in PM2's shape, written
//!   from each instance's kept options: `actions/pm2_list.rs`
//! - the apps by name, and which processes a target names: [`apps`]
//! - one app, the owner of its instances and sockets, running one
//!   operation at a time: [`app`]
//! - replacing an app's instances on reload: [`reload`]
//! - one instance's life (launch → ready → exit → restart): [`instance`]
//! - building the child process and its channels: [`spawn`], [`channels`],
//!   [`process`]; the seam through which instances start, signal and
//!   wait for processes, so unit tests can fake them: [`launcher`]
//! - listening sockets shared by an app's instances, and by apps on one
//!   address: [`sockets`]
//! - stopping a process (signal, timeout, SIGKILL): [`stop`]
//! - crash restarts and backoff: [`restart_policy`]; restarts over a
//!   memory limit: [`memory_limit`]
//! - log files: their names [`log_paths`], copying output into them
//!   [`log_writer`], the lines written [`log_lines`], opening them again
//!   (`reloadLogs`) [`log_reopen`], rotating them (pm2-logrotate's
//!   settings) [`log_rotate`], and the daemon's own log [`own_log_rotate`];
//!   pid files: [`pid_file`]; CPU/memory: [`metrics`], measured in the
//!   background for lists: [`usage`]; the Node version of each
//!   interpreter: [`node_versions`]
//! - the state on disk: [`state_file`]; after a crash of the daemon, the
//!   next one its keeper (`crate::keeper`) starts takes the processes
//!   over: [`adopt`], through the keeper's link [`keeper_link`]; without a
//!   keeper, the next daemon replaces them: [`recover`]
//! - telling systemd the daemon is ready, reloading, stopping: [`systemd`]
//! - reloads an app asks for itself: on a schedule (`cron_restart`, in
//!   [`app`]) and on file changes ([`watch`])
//! - `rsup update`: re-executing the daemon in place with the new binary,
//!   both images' sides [`reexec`]; taking every app back with its
//!   processes (after an update or a crash) [`take_back`]; what it waits for (running requests,
//!   reloads) and the daemon's seat [`retire`]; pausing the readers of
//!   the processes' output and channels [`freeze`]; a process the next
//!   image goes on supervising [`held_process`]
//! - the bus of lifecycle steps and output that clients subscribe to
//!   (PM2's `launchBus`): [`events`]; serving a subscriber:
//!   `actions/subscribe.rs`
//! - what a container orchestrator probes and scrapes (`--health-port`):
//!   the HTTP endpoints and the drain before a stop [`health`], the
//!   `/metrics` text [`exposition`], the reloads counted for it
//!   [`reload_record`]

mod actions;
mod adopt;
mod app;
mod apps;
mod channels;
mod descriptors;
mod events;
mod exposition;
mod freeze;
mod health;
mod held_process;
mod instance;
mod keeper_link;
mod launcher;
mod lifecycle;
mod log_lines;
mod log_paths;
mod log_reopen;
mod log_rotate;
mod log_writer;
mod memory_limit;
mod metrics;
mod node_versions;
mod own_listeners;
mod own_log_rotate;
mod pid1;
mod pid_file;
mod preload;
mod process;
mod recover;
mod reexec;
mod reload;
mod reload_record;
mod restart_policy;
mod retire;
mod server;
mod sockets;
mod spawn;
mod state_file;
mod stop;
mod systemd;
mod take_back;
mod usage;
mod watch;

pub use descriptors::{close_inherited_descriptors, raise_descriptor_limit};
pub use health::HealthOptions;
pub use instance::now_ms;
pub use lifecycle::{init_tracing, open_daemon_log, run_kept, run_reexecuted};
pub use own_log_rotate::stderr_is;
pub use pid1::become_reaper_if_pid1;
pub use reexec::EXEC_STATE_VERSION;
pub use spawn::pm2_variables_of;

/// Runs the daemon (see [`lifecycle::run`]).
pub fn run(
    home: crate::home::Home,
    apps: Vec<rsup_proto::app::AppSpec>,
    health: Option<HealthOptions>,
) -> anyhow::Result<()> {
    give_back_large_buffers();
    lifecycle::run(home, apps, health)
}

/// Gives the kernel back the pages of the heap that hold nothing: the
/// messages, lists and launch requests of a burst of changes (a thousand
/// instances started) are freed between the few allocations that stay,
/// and glibc would keep those pages for good. Called once changes settle.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// glibc raises its mmap threshold to the size of every large block freed,
/// up to 32 MB, and then keeps twice that free in the heap: after one
/// `list` of a thousand processes (a reply of megabytes), the daemon would
/// hold several megabytes it no longer uses. A fixed threshold keeps large
/// buffers in their own mappings, returned to the kernel when freed.
fn give_back_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // daemon starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
