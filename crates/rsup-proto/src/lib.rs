//! The language rsup's processes speak to each other.
//!
//! - [`app`]: an application as the daemon runs it (fully resolved options) and
//!   what the daemon reports about each running instance.
//! - [`control`]: requests from the `rsup` CLI to the daemon and the replies.
//! - [`events`]: what the daemon streams to a client that subscribed (the
//!   Node API's bus).
//! - [`worker`]: messages between the daemon and a worker process (the Node
//!   addon speaks this side) over the socket named by [`worker::FD_ENV`].
//! - [`framing`]: both channels are JSON lines; this is the one encoder/decoder.
//! - [`pm2`]: the process list in PM2's shape (`jlist`, `prettylist`, the
//!   Node API), for tools written for PM2.

pub mod app;
pub mod control;
pub mod events;
pub mod framing;
pub mod pm2;
pub mod worker;
