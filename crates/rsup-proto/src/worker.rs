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

/// Worker → supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The app is ready for traffic.
    Ready,
}

/// Supervisor → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorMessage {
    /// Stop gracefully; the supervisor sends SIGKILL `deadline_ms` after
    /// this message.
    Shutdown { deadline_ms: u64 },
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
            encode(&SupervisorMessage::Shutdown { deadline_ms: 1600 }),
            b"{\"type\":\"shutdown\",\"deadline_ms\":1600}\n"
        );
        let m: WorkerMessage = decode(b"{\"type\":\"ready\"}").unwrap();
        assert_eq!(m, WorkerMessage::Ready);
    }
}
