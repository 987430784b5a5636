//! Starting one process of an instance: the command line, the environment
//! (the app's, PM2's variables, rsup's), its own process group, the Node IPC
//! channel, the rsup worker channel, and stdout/stderr into the logs.

use super::events::{tap, Events, LogSource, MessageRelay};
use super::freeze::Gate;
use super::launcher::{ChildProcess, OsChild};
use super::log_lines::{JsonFields, LineFormat};
use super::log_writer::{spawn_copier, LogTarget};
use crate::config::interpreter;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use rsup_proto::app::{defaults, AppSpec, LogType, ProcessInfo};
use rsup_proto::events::LogStream;
use rsup_proto::worker;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use tokio::io::AsyncRead;
use tokio::net::UnixStream;
use tokio::process::Command;
use tokio::task::JoinHandle;

/// Where the worker channel lands in the child: every app has it at 3.
const CHILD_WORKER_FD: RawFd = 3;
/// Where a Node app's IPC channel lands. Both numbers are below 16 on
/// purpose: Node marks every descriptor below 16 it inherits close-on-exec
/// at start-up (libuv's `uv_disable_stdio_inheritance`), before it opens
/// `NODE_CHANNEL_FD`, and never clears the mark; at a higher number the IPC
/// socket stayed inheritable and reached every process the app spawned or
/// exec'd through a shell.
const CHILD_NODE_CHANNEL_FD: RawFd = 4;

/// The descriptor limit apps start with, when the daemon raised its own
/// (see `lifecycle`): apps get the limit the daemon was started with, as
/// under PM2, not the raised one.
static CHILD_DESCRIPTOR_LIMIT: OnceLock<libc::rlimit> = OnceLock::new();

/// Records the descriptor limit every app is to start with.
pub fn set_child_descriptor_limit(limit: libc::rlimit) {
    let _ = CHILD_DESCRIPTOR_LIMIT.set(limit);
}

/// Who is being launched, beyond the app's options.
pub struct LaunchRequest<'a> {
    pub spec: &'a AppSpec,
    pub id: u32,
    pub instance: u32,
    /// PM2's `unique_id` of the instance.
    pub unique_id: &'a str,
    pub restarts: u32,
    pub out_log: &'a PathBuf,
    pub err_log: &'a PathBuf,
    /// The log of both streams (`log_file`).
    pub combined_log: Option<&'a PathBuf>,
    /// rsup's Node preload, loaded with `-r` into Node apps so that
    /// `server.listen()` takes the supervisor's sockets.
    pub preload: Option<&'a Path>,
    /// Where the process's output is published for subscribers; `None`
    /// for a request only described, never launched.
    pub events: Option<&'a Arc<Events>>,
    /// What pauses the process's readers before a re-exec.
    pub freeze: Option<&'a Arc<Gate>>,
    /// Who keeps its descriptors should the daemon crash.
    pub keeper: Option<&'a Arc<super::keeper_link::KeeperLink>>,
}

/// A process just started, with the parent's ends of its channels.
pub struct Launched {
    pub child: Box<dyn ChildProcess>,
    pub pid: u32,
    /// Node's IPC channel (`NODE_CHANNEL_FD`), for Node apps only.
    pub node_channel: Option<UnixStream>,
    /// rsup's worker channel (`RSUP_FD`).
    pub worker_channel: UnixStream,
    /// The stdout and stderr copiers; they end when the pipes close.
    pub log_copiers: Vec<JoinHandle<()>>,
    /// The read ends of the stdout and stderr pipes, open as long as the
    /// copiers run (for a re-exec of the daemon, which keeps them).
    pub output_fds: [Option<RawFd>; 2],
    /// Where the messages the app sends on its Node channel go.
    pub relay: Option<MessageRelay>,
}

pub fn launch(req: &LaunchRequest) -> std::io::Result<Launched> {
    let spec = req.spec;
    let (worker_parent, worker_child) = channel_pair()?;
    let node_pair = if spec.node {
        Some(channel_pair()?)
    } else {
        None
    };

    // A package manager runs the app's node as a grandchild: the preload
    // reaches it through NODE_OPTIONS, and claims the worker channel only
    // in the process that listens or says ready.
    let through_package_manager = interpreter::runs_package_manager(spec);
    let mut cmd = match &spec.interpreter {
        Some(interpreter) => {
            let mut c = Command::new(interpreter);
            // `-r` rather than NODE_OPTIONS: it does not leak into the
            // app's own child processes.
            if let (true, false, Some(preload)) = (spec.node, through_package_manager, req.preload)
            {
                c.arg("-r").arg(preload);
            }
            c.args(&spec.node_args).arg(&spec.script);
            c
        }
        None => Command::new(&spec.script),
    };
    let env = spec.process_env();
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&env)
        .envs(pm2_variables(req))
        .env(worker::FD_ENV, CHILD_WORKER_FD.to_string())
        .env(worker::KILL_TIMEOUT_ENV, spec.kill_timeout_ms.to_string())
        .env(worker::KILL_SIGNAL_ENV, &spec.kill_signal)
        .env(
            worker::LISTEN_TIMEOUT_ENV,
            spec.listen_timeout_ms.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so the kill signal reaches the whole tree and a
        // Ctrl-C meant for a foreground rsup does not.
        .process_group(0)
        .kill_on_drop(false);
    if spec.wait_ready {
        cmd.env(worker::WAIT_READY_ENV, "1");
    }
    if let (true, Some(preload)) = (through_package_manager, req.preload) {
        cmd.env(
            "NODE_OPTIONS",
            with_preload(env.get("NODE_OPTIONS").map(String::as_str), preload),
        );
    }

    let node_source = node_pair
        .as_ref()
        .map(|(_, child_end)| child_end.as_raw_fd());
    if node_source.is_some() {
        cmd.env("NODE_CHANNEL_FD", CHILD_NODE_CHANNEL_FD.to_string())
            .env("NODE_CHANNEL_SERIALIZATION_MODE", "json");
    }
    let worker_source = worker_child.as_raw_fd();
    let descriptor_limit = CHILD_DESCRIPTOR_LIMIT.get().copied();
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (fcntl, dup2, close_range, setrlimit), without allocating, on
    // descriptors that stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            give_child_descriptors(worker_source, node_source)?;
            if let Some(limit) = descriptor_limit {
                // Best effort: failing leaves the app the daemon's higher
                // limit, which harms nothing.
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }

    let mut child = cmd.spawn()?;
    // The child's ends now live in the child; closing ours lets us see EOF
    // when it exits.
    drop(worker_child);
    let node_channel = match node_pair {
        Some((parent, child_end)) => {
            drop(child_end);
            Some(into_tokio(parent)?)
        }
        None => None,
    };
    // Tokio has no pid only for a child already reaped, which cannot happen
    // before we wait for it; never let a made-up pid reach kill().
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process exited before it could be watched"))?;
    let output_fds = [
        child.stdout.as_ref().map(AsRawFd::as_raw_fd),
        child.stderr.as_ref().map(AsRawFd::as_raw_fd),
    ];
    let (log_copiers, relay) = copy_output(req, child.stdout.take(), child.stderr.take());
    Ok(Launched {
        child: Box::new(OsChild { child, pid }),
        pid,
        node_channel,
        worker_channel: into_tokio(worker_parent)?,
        log_copiers,
        output_fds,
        relay,
    })
}

/// Copies a process's stdout and stderr into its logs (and the bus), and
/// says where what it sends on its Node channel goes.
pub fn copy_output(
    req: &LaunchRequest,
    out: Option<impl AsyncRead + Unpin + Send + 'static>,
    err: Option<impl AsyncRead + Unpin + Send + 'static>,
) -> (Vec<JoinHandle<()>>, Option<MessageRelay>) {
    let spec = req.spec;
    // Writing to /dev/null twice is pointless.
    let combined = req
        .combined_log
        .filter(|p| p.as_path() != Path::new("/dev/null"))
        .cloned();
    let target = |path: &PathBuf, stream| LogTarget {
        path: path.clone(),
        combined: combined.clone(),
        format: line_format(req, stream),
        rotate: spec.log_rotate.clone(),
        freeze: req.freeze.cloned(),
    };
    let mut log_copiers = Vec::new();
    let source = Arc::new(LogSource {
        id: req.id,
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
    });
    if let Some(out) = out {
        log_copiers.push(spawn_copier(
            tap(req.events, out, source.clone(), LogStream::Out),
            target(req.out_log, "out"),
        ));
    }
    if let Some(err) = err {
        log_copiers.push(spawn_copier(
            tap(req.events, err, source.clone(), LogStream::Err),
            target(req.err_log, "err"),
        ));
    }
    let relay = req.events.map(|events| MessageRelay {
        events: events.clone(),
        source,
    });
    (log_copiers, relay)
}

/// In the child, between fork and exec: the channels go to their fixed
/// numbers (3, and 4 for Node's), inheritable; every other descriptor above
/// them is marked close-on-exec, so the app gets 0, 1, 2 and its channels
/// and nothing the daemon happens to hold. Async-signal-safe: no allocation.
fn give_child_descriptors(worker: RawFd, node: Option<RawFd>) -> std::io::Result<()> {
    let first_free = CHILD_NODE_CHANNEL_FD + 1;
    // Copies above the final numbers first, so that placing one channel
    // never overwrites the other; the copies are close-on-exec and vanish.
    let worker = dup_at_least(worker, first_free)?;
    let node = match node {
        Some(fd) => Some(dup_at_least(fd, first_free)?),
        None => None,
    };
    // dup2 leaves the new descriptor without close-on-exec.
    place(worker, CHILD_WORKER_FD)?;
    let keep_below = match node {
        Some(fd) => {
            place(fd, CHILD_NODE_CHANNEL_FD)?;
            CHILD_NODE_CHANNEL_FD + 1
        }
        None => CHILD_WORKER_FD + 1,
    };
    // The daemon opens everything close-on-exec and closed what it
    // inherited at start; this keeps it so whatever a library may leave
    // open. Kernels before 5.11 lack the flag: then that start-up close is
    // the only guard.
    // SAFETY: close_range only changes descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            keep_below as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
    }
    Ok(())
}

fn dup_at_least(fd: RawFd, min: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: fcntl on a descriptor we hold; the copy is ours.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(copy)
}

fn place(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: whatever was at `target` is the daemon's close-on-exec
    // descriptor, which the child does not use.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The variables PM2 gives the process `info` describes, as its current
/// process got them (`rsup env`).
pub fn pm2_variables_of(info: &ProcessInfo) -> Vec<(String, String)> {
    pm2_variables(&LaunchRequest {
        spec: &info.spec,
        id: info.id,
        instance: info.instance,
        unique_id: &info.unique_id,
        restarts: info.restarts,
        out_log: &info.out_log,
        err_log: &info.err_log,
        combined_log: info.combined_log.as_ref(),
        preload: None,
        events: None,
        freeze: None,
        keeper: None,
    })
}

/// The variables PM2 gives its processes, which apps and libraries read.
fn pm2_variables(req: &LaunchRequest) -> Vec<(String, String)> {
    let spec = req.spec;
    let mut vars = spec.instance_variables(req.instance);
    vars.extend([
        ("pm_id".into(), req.id.to_string()),
        ("unique_id".into(), req.unique_id.to_string()),
        ("name".into(), spec.name.clone()),
        ("exec_mode".into(), spec.exec_mode.pm2_name().into()),
        ("instances".into(), spec.instances.to_string()),
        ("restart_time".into(), req.restarts.to_string()),
        ("pm_exec_path".into(), spec.script.clone()),
        ("pm_cwd".into(), spec.cwd.display().to_string()),
        ("pm_out_log_path".into(), req.out_log.display().to_string()),
        ("pm_err_log_path".into(), req.err_log.display().to_string()),
        ("RSUP_ID".into(), req.id.to_string()),
    ]);
    vars
}

/// `NODE_OPTIONS` with `--require <preload>` appended, the path quoted as
/// Node's parser of that variable reads it (double quotes, `\\` and `\"`
/// escaped).
fn with_preload(existing: Option<&str>, preload: &Path) -> String {
    let path = preload.to_string_lossy();
    let quoted = if path.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        path.into_owned()
    };
    match existing.map(str::trim).filter(|s| !s.is_empty()) {
        Some(before) => format!("{before} --require {quoted}"),
        None => format!("--require {quoted}"),
    }
}

/// How the lines of one stream (`out` or `err`) are written: PM2's JSON
/// records with `log_type: json` (their `timestamp` in the date format if
/// there is one), else with a timestamp in front if asked.
fn line_format(req: &LaunchRequest, stream: &'static str) -> LineFormat {
    let spec = req.spec;
    match (spec.log_type, timestamp_format(spec)) {
        (LogType::Json, timestamp_format) => LineFormat::Json(JsonFields {
            timestamp_format,
            stream,
            id: req.id,
            name: spec.name.clone(),
        }),
        (LogType::Text, Some(format)) => LineFormat::Stamped(format),
        (LogType::Text, None) => LineFormat::Raw,
    }
}

pub fn timestamp_format(spec: &AppSpec) -> Option<String> {
    match (&spec.log_date_format, spec.time) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(defaults::LOG_DATE_FORMAT.into()),
        (None, false) => None,
    }
}

/// A connected pair of Unix stream sockets, both close-on-exec: the child's
/// end is made inheritable only inside the child, so concurrent launches
/// never leak each other's channels.
fn channel_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

fn into_tokio(fd: OwnedFd) -> std::io::Result<UnixStream> {
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    UnixStream::from_std(std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_and_increment_variables_follow_the_index() {
        let mut spec = crate::test_support::spec();
        spec.instance_var = "APP_ID".into();
        assert_eq!(
            spec.instance_variables(2),
            [("APP_ID".to_string(), "2".to_string())]
        );
        spec.increment_var = Some("PORT".into());
        spec.env.insert("PORT".into(), "3000".into());
        assert_eq!(
            spec.instance_variables(1),
            [
                ("APP_ID".to_string(), "1".to_string()),
                ("PORT".to_string(), "3001".to_string())
            ]
        );
        // Unset: counted from 0, as PM2 does.
        spec.increment_var = Some("WORKER".into());
        assert_eq!(spec.instance_variables(3)[1].1, "3");
    }

    #[test]
    fn preload_is_appended_to_node_options() {
        let p = Path::new("/opt/rsup/preload.js");
        assert_eq!(with_preload(None, p), "--require /opt/rsup/preload.js");
        assert_eq!(
            with_preload(Some("  "), p),
            "--require /opt/rsup/preload.js"
        );
        assert_eq!(
            with_preload(Some("--max-old-space-size=512"), p),
            "--max-old-space-size=512 --require /opt/rsup/preload.js"
        );
        assert_eq!(
            with_preload(None, Path::new("/my apps/a\"b/preload.js")),
            "--require \"/my apps/a\\\"b/preload.js\""
        );
    }
}
