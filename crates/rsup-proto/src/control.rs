//! The control socket: one request per connection from the CLI, answered by
//! zero or more [`Reply::Progress`] lines and then exactly one final reply.

use crate::app::{AppSpec, ProcessInfo};
use serde::{Deserialize, Serialize};

/// Name of the control socket inside `RSUP_HOME`.
pub const SOCKET_FILE: &str = "rsup.sock";

/// Which processes a command acts on: `all`, an app name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Target(pub String);

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target(s.to_string())
    }
}

/// What to do with the apps of a config file that already run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyAction {
    Restart,
    Reload,
}

/// How a reload proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOptions {
    /// Instances replaced at the same time.
    pub parallel: u32,
    /// A new instance not ready within `listen_timeout` fails the reload,
    /// instead of being taken as ready (PM2's behaviour).
    pub strict_ready: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            parallel: 1,
            strict_ready: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Start these apps. An app whose name already runs is refused.
    Start {
        apps: Vec<AppSpec>,
    },
    Stop {
        target: Target,
    },
    Restart {
        target: Target,
    },
    Reload {
        target: Target,
        #[serde(default)]
        options: ReloadOptions,
    },
    Delete {
        target: Target,
    },
    /// startOrRestart / startOrReload: start what is new, restart or reload
    /// what runs with the new options.
    Apply {
        apps: Vec<AppSpec>,
        action: ApplyAction,
        #[serde(default)]
        options: ReloadOptions,
    },
    /// Runs `instances` instances of the app, starting or removing some.
    Scale {
        name: String,
        instances: u32,
    },
    List,
    /// Stop every app, then the daemon.
    Kill,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// A step of a long command, for the CLI to print as it happens.
    Progress {
        message: String,
    },
    /// The command succeeded; the processes it concerned (all of them for
    /// `list`).
    Done {
        processes: Vec<ProcessInfo>,
    },
    Pong {
        pid: u32,
        version: String,
    },
    Error {
        message: String,
    },
}

impl Reply {
    /// Whether this reply ends the exchange.
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Progress { .. })
    }
}
