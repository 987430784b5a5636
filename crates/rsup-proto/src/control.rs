//! The control socket: one request per connection from the CLI, answered by
//! zero or more [`Reply::Progress`] lines and then exactly one final reply.
//! The exception is [`Request::Subscribe`]: its final reply,
//! [`Reply::Subscribed`], is followed by [`crate::events::BusEvent`] lines
//! until either side closes.

use crate::app::{AppSpec, ProcessInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Name of the control socket inside `RSUP_HOME`.
pub const SOCKET_FILE: &str = "rsup.sock";

/// Which processes a command acts on, parsed once from what the user typed
/// ([`Target::parse`]) and resolved only by the daemon, so every verb picks
/// the same processes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every process.
    All,
    /// The process with this `pm_id`; an app with this name when no process
    /// has the id.
    Id(u32),
    /// Every instance of the app.
    Name(String),
    /// Every app whose name matches the pattern (typed `/pattern/`, as PM2
    /// takes it).
    Regex(String),
    /// Every process running this script (an absolute path, as the CLI
    /// resolved what was typed), as PM2 takes `stop app.js`.
    Script(PathBuf),
}

impl Target {
    /// PM2's reading of a target: `all`, a number, `/pattern/`, else a name.
    pub fn parse(s: &str) -> Target {
        if s == "all" {
            return Target::All;
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = s.parse() {
                return Target::Id(id);
            }
        }
        match s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(pattern) if !pattern.is_empty() => Target::Regex(pattern.to_string()),
            _ => Target::Name(s.to_string()),
        }
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::parse(s)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Id(id) => write!(f, "{id}"),
            Target::Name(name) => f.write_str(name),
            Target::Regex(pattern) => write!(f, "/{pattern}/"),
            Target::Script(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How many instances `scale` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleCount {
    /// Exactly this many (`N`).
    To(u32),
    /// This many more (`+N`).
    Add(u32),
    /// This many fewer (`-N`), never below zero.
    Remove(u32),
}

impl ScaleCount {
    /// Reads `N`, `+N` or `-N`.
    pub fn parse(s: &str) -> Result<ScaleCount, String> {
        let bad = || format!("expected a number, +N or -N, got {s:?}");
        let (make, digits): (fn(u32) -> ScaleCount, &str) = match s.as_bytes().first() {
            Some(b'+') => (ScaleCount::Add, &s[1..]),
            Some(b'-') => (ScaleCount::Remove, &s[1..]),
            _ => (ScaleCount::To, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map(make).map_err(|_| bad())
    }

    /// The instance count this asks for when `now` run.
    pub fn apply(self, now: u32) -> u32 {
        match self {
            ScaleCount::To(n) => n,
            ScaleCount::Add(n) => now.saturating_add(n),
            ScaleCount::Remove(n) => now.saturating_sub(n),
        }
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

/// Options a restart or reload changes (PM2's `restart <app> --name x
/// --node-args y --update-env`); `None` keeps the app's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecUpdate {
    /// A new name for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New interpreter arguments; empty removes them (PM2's `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_args: Option<Vec<String>>,
    /// The environment to inherit from now on (`--update-env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_env: Option<BTreeMap<String, String>>,
}

impl SpecUpdate {
    pub fn is_empty(&self) -> bool {
        *self == SpecUpdate::default()
    }

    /// `spec` with these changes.
    pub fn apply(&self, spec: &AppSpec) -> AppSpec {
        let mut new = spec.clone();
        if let Some(name) = &self.name {
            new.name = name.clone();
        }
        if let Some(node_args) = &self.node_args {
            new.node_args = node_args.clone();
            new.node_args_unset = node_args.is_empty();
        }
        if let Some(env) = &self.inherited_env {
            new.inherited_env = env.clone();
        }
        new
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Start these apps. An app whose name is taken is refused, unless it
    /// runs the same script and nothing of it runs (then it is restarted,
    /// as PM2's `start` does), or `force` is set (then the new processes
    /// join it, as PM2's `start -f` adds a process of the same name).
    Start {
        apps: Vec<AppSpec>,
        #[serde(default)]
        force: bool,
    },
    Stop {
        target: Target,
    },
    Restart {
        target: Target,
        #[serde(default, skip_serializing_if = "SpecUpdate::is_empty")]
        update: SpecUpdate,
    },
    Reload {
        target: Target,
        #[serde(default)]
        options: ReloadOptions,
        #[serde(default, skip_serializing_if = "SpecUpdate::is_empty")]
        update: SpecUpdate,
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
    /// Runs as many instances of the app as `count` says, starting or
    /// removing some.
    Scale {
        name: String,
        count: ScaleCount,
    },
    /// Sends `signal` (a name such as `SIGUSR2`) to the main process of
    /// every running instance the targets name, once each (PM2's
    /// `sendSignal`).
    Signal {
        signal: String,
        targets: Vec<Target>,
    },
    /// Sets the restart counters of the instances `target` names back to
    /// zero (PM2's `reset`).
    Reset {
        target: Target,
    },
    /// The processes `target` names; every process when it is `None`.
    /// Their specs leave the inherited environment out. With `pm2`, in
    /// PM2's shape, as [`Reply::Pm2List`] (a daemon that predates it
    /// ignores the flag and answers [`Reply::Done`]).
    List {
        #[serde(default)]
        target: Option<Target>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pm2: bool,
    },
    /// The processes `target` names, their specs with the inherited
    /// environment (`rsup env`).
    Environment {
        target: Target,
    },
    /// Stop every app, then the daemon.
    Kill,
    /// Open every log file again at its path (PM2's `reloadLogs`), after
    /// log rotation moved or removed them.
    ReloadLogs,
    /// Empty the log files of the processes `target` names; with no target,
    /// those of every process and the daemon's own log (PM2's `flush`).
    Flush {
        #[serde(default)]
        target: Option<Target>,
    },
    /// `rsup update`: re-execute the daemon with the binary `exe`, in
    /// place (same pid), keeping every process running and supervised.
    /// Answered with [`Reply::Updated`] by the new image, or with
    /// [`Reply::Error`] by the old one, which then serves on.
    ReExec {
        exe: PathBuf,
    },
    /// Stream the daemon's events (PM2's bus) on this connection until the
    /// client closes it; with `logs`, the processes' output too.
    Subscribe {
        #[serde(default)]
        logs: bool,
    },
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
    /// The subscription is in place: every event from now on follows.
    Subscribed,
    /// The processes a [`Request::List`] with `pm2` asked for, in PM2's
    /// shape ([`crate::pm2`]): what `pm2 jlist` prints.
    Pm2List {
        processes: Vec<serde_json::Value>,
    },
    /// The daemon (`pid`) re-executed itself from version `from` as
    /// version `to` ([`Request::ReExec`]): `kept` processes run on,
    /// supervised, and `started` were started (they had none running).
    Updated {
        pid: u32,
        from: String,
        to: String,
        kept: u32,
        started: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_as_pm2_reads_them() {
        assert_eq!(Target::parse("all"), Target::All);
        assert_eq!(Target::parse("3"), Target::Id(3));
        assert_eq!(Target::parse("api"), Target::Name("api".into()));
        assert_eq!(Target::parse("/^api-/"), Target::Regex("^api-".into()));
        // Not a pattern, not an id: names.
        assert_eq!(Target::parse("/"), Target::Name("/".into()));
        assert_eq!(Target::parse("//"), Target::Name("//".into()));
        assert_eq!(Target::parse("-1"), Target::Name("-1".into()));
        assert_eq!(
            Target::parse("99999999999"),
            Target::Name("99999999999".into())
        );
        for t in ["all", "3", "api", "/^a/"] {
            assert_eq!(Target::parse(t).to_string(), t);
        }
    }

    #[test]
    fn an_update_request_is_one_line_an_older_daemon_refuses_cleanly() {
        let line = crate::framing::encode(&Request::ReExec {
            exe: "/usr/bin/rsup".into(),
        });
        assert_eq!(line, b"{\"cmd\":\"re_exec\",\"exe\":\"/usr/bin/rsup\"}\n");
        // A daemon built before the request existed fails to decode it,
        // which its server answers with an error rather than a panic.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        enum Older {
            Ping,
        }
        assert!(crate::framing::decode::<Older>(&line).is_err());
    }

    #[test]
    fn a_list_in_pm2_shape_is_a_flag_older_daemons_ignore() {
        let plain = Request::List {
            target: None,
            pm2: false,
        };
        assert_eq!(
            crate::framing::encode(&plain),
            b"{\"cmd\":\"list\",\"target\":null}\n"
        );
        let line = crate::framing::encode(&Request::List {
            target: None,
            pm2: true,
        });
        assert_eq!(line, b"{\"cmd\":\"list\",\"target\":null,\"pm2\":true}\n");
        #[derive(Debug, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        enum Older {
            List { target: Option<Target> },
        }
        assert!(matches!(
            crate::framing::decode::<Older>(&line).unwrap(),
            Older::List { target: None }
        ));
    }

    #[test]
    fn scale_counts() {
        assert_eq!(ScaleCount::parse("4"), Ok(ScaleCount::To(4)));
        assert_eq!(ScaleCount::parse("+2").unwrap().apply(3), 5);
        assert_eq!(ScaleCount::parse("-5").unwrap().apply(3), 0);
        for bad in ["", "+", "x", "1.5", "+-1", " 2"] {
            assert!(ScaleCount::parse(bad).is_err(), "{bad:?}");
        }
    }
}
