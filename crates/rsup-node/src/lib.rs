//! Native half of the `rsup` npm package: only what Node cannot do itself.
//!
//! - [`worker_channel`]: rsup's own worker socket (`RSUP_FD`), spoken with
//!   the types from `rsup-proto`.
//! - [`worker_reader`], [`scm_rights`]: reading that socket, with the
//!   listening sockets the supervisor sends along (SCM_RIGHTS).
//! - [`sd_notify`]: systemd readiness, a Unix datagram Node cannot send.
//! - [`pm2`]: the process list in PM2's shape, for the `rsup/pm2` API.
//! - [`testing`]: a datagram receiver the package's tests use to stand in
//!   for systemd; exported under an internal name.
//!
//! Signals, HTTP draining and the shutdown sequence live in the JS package
//! (`npm/rsup/lib`), where they belong.

// Public so the functions napi exports count as used in test builds too.
pub mod pm2;
pub mod scm_rights;
pub mod sd_notify;
pub mod testing;
pub mod worker_channel;
pub mod worker_reader;
