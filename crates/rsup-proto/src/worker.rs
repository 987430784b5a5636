//! The worker channel: a Unix stream socket the daemon creates for every
//! instance and leaves open in it. The worker finds it through
//! [`FD_ENV`]; a library in the worker (the Node addon) reads the variable
//! once, removes it and marks the descriptor close-on-exec so the app's own
//! children do not inherit it.
//!
//! This is rsup's own channel; Node apps also get Node's IPC channel
//! (`NODE_CHANNEL_FD`) for PM2-style `process.send('ready')`.

use serde::{Deserialize, Serialize};

/// Variable holding the worker channel's descriptor number.
pub const FD_ENV: &str = "RSUP_FD";
/// Variable holding the instance's kill timeout in milliseconds, so a
/// worker that receives only the kill signal still knows its deadline.
pub const KILL_TIMEOUT_ENV: &str = "RSUP_KILL_TIMEOUT_MS";
/// Variable holding the signal the supervisor will send to stop the worker.
pub const KILL_SIGNAL_ENV: &str = "RSUP_KILL_SIGNAL";
/// Set to `1` when the app runs with `wait_ready`: a worker that can defer
/// accepting (rsup's Node preload) takes no connection on the supervisor's
/// sockets until it says [`WorkerMessage::Ready`] or is told
/// [`SupervisorMessage::Accept`].
pub const WAIT_READY_ENV: &str = "RSUP_WAIT_READY";
/// Variable holding the instance's `listen_timeout` in milliseconds: with
/// `wait_ready`, a worker that has not said ready starts accepting on its
/// own this long after it started, as the supervisor then treats it as
/// ready anyway.
pub const LISTEN_TIMEOUT_ENV: &str = "RSUP_LISTEN_TIMEOUT_MS";

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The app is ready for traffic.
    Ready,
    /// Asks for a listening socket. The supervisor binds each address once
    /// per app and hands every instance a duplicate, so the accept queue
    /// outlives any single process. Answered by
    /// [`SupervisorMessage::Listening`] with the same `request`.
    Listen {
        request: u64,
        address: ListenAddress,
    },
    /// After a [`SupervisorMessage::Shutdown`]: the worker has closed its
    /// listening sockets and finished its in-flight requests. The
    /// supervisor then sends the kill signal without waiting further.
    Drained,
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListenAddress {
    /// `host` as Node takes it (`None`: every address, IPv6 and IPv4).
    /// Port 0 asks for a free port; all instances of an app share it.
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Unix {
        path: String,
    },
}

/// Why a listen request failed, as Node reports bind errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenError {
    /// errno name, e.g. `EADDRINUSE`, `EACCES`.
    pub code: String,
    /// errno number (positive).
    pub errno: i32,
    pub message: String,
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorMessage {
    /// Stop gracefully; the supervisor sends SIGKILL `deadline_ms` after
    /// this message. `reason` is absent from supervisors older than it.
    Shutdown {
        deadline_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ShutdownReason>,
    },
    /// Answer to [`WorkerMessage::Listen`]. On success the listening
    /// socket's descriptor travels with this line as SCM_RIGHTS ancillary
    /// data, sent in the same `sendmsg` as the line's first byte; a
    /// receiver keeps received descriptors in arrival order and gives one to
    /// each successful `listening` line.
    Listening {
        request: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ListenError>,
    },
    /// With `wait_ready`: start accepting connections on the supervisor's
    /// sockets now, ready or not. The supervisor sends it when it treats
    /// the worker as ready without a [`WorkerMessage::Ready`] from it (at
    /// `listen_timeout`). Workers that do not defer accepting ignore it, as
    /// they ignore every message they do not know.
    Accept,
}

/// Why a worker is asked to shut down, so that it can tell its clients
/// whether to come back (a WebSocket close of 1012 Service Restart) or not
/// (1001 Going Away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    /// The app goes on: the process is replaced (reload, restart, a new
    /// process that failed to become ready while the old one serves).
    Reload,
    /// The app goes away: stop, delete, the daemon's own shutdown.
    Stop,
    /// A reason this version does not know (from a newer supervisor).
    #[serde(other)]
    Unknown,
}

impl ShutdownReason {
    /// The name workers see; `None` for [`ShutdownReason::Unknown`].
    pub fn name(self) -> Option<&'static str> {
        match self {
            ShutdownReason::Reload => Some("reload"),
            ShutdownReason::Stop => Some("stop"),
            ShutdownReason::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{decode, encode};

    #[test]
    fn wire_format_is_stable() {
        // The addon and other-language clients depend on these exact lines.
        assert_eq!(encode(&WorkerMessage::Ready), b"{\"type\":\"ready\"}\n");
        assert_eq!(
            encode(&SupervisorMessage::Shutdown {
                deadline_ms: 1600,
                reason: Some(ShutdownReason::Stop)
            }),
            b"{\"type\":\"shutdown\",\"deadline_ms\":1600,\"reason\":\"stop\"}\n"
        );
        let m: WorkerMessage = decode(b"{\"type\":\"ready\"}").unwrap();
        assert_eq!(m, WorkerMessage::Ready);
        let listen: WorkerMessage = decode(
            br#"{"type":"listen","request":7,"address":{"kind":"tcp","host":null,"port":3000}}"#,
        )
        .unwrap();
        assert_eq!(
            listen,
            WorkerMessage::Listen {
                request: 7,
                address: ListenAddress::Tcp {
                    host: None,
                    port: 3000
                }
            }
        );
        assert_eq!(
            encode(&SupervisorMessage::Listening {
                request: 7,
                error: None
            }),
            b"{\"type\":\"listening\",\"request\":7}\n"
        );
        assert_eq!(
            encode(&SupervisorMessage::Accept),
            b"{\"type\":\"accept\"}\n"
        );
    }

    #[test]
    fn shutdown_reason_is_optional_and_tolerant() {
        // From a supervisor older than the reason.
        let old: SupervisorMessage = decode(br#"{"type":"shutdown","deadline_ms":5}"#).unwrap();
        assert_eq!(
            old,
            SupervisorMessage::Shutdown {
                deadline_ms: 5,
                reason: None
            }
        );
        // From a newer one with a reason this version does not know: still
        // a shutdown.
        let newer: SupervisorMessage =
            decode(br#"{"type":"shutdown","deadline_ms":5,"reason":"hibernate"}"#).unwrap();
        assert_eq!(
            newer,
            SupervisorMessage::Shutdown {
                deadline_ms: 5,
                reason: Some(ShutdownReason::Unknown)
            }
        );
        let reload: SupervisorMessage =
            decode(br#"{"type":"shutdown","deadline_ms":5,"reason":"reload"}"#).unwrap();
        assert_eq!(
            reload,
            SupervisorMessage::Shutdown {
                deadline_ms: 5,
                reason: Some(ShutdownReason::Reload)
            }
        );
        // Without a reason the line is what older workers already read.
        assert_eq!(
            encode(&SupervisorMessage::Shutdown {
                deadline_ms: 5,
                reason: None
            }),
            b"{\"type\":\"shutdown\",\"deadline_ms\":5}\n"
        );
    }
}
