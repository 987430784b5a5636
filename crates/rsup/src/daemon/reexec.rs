//! `rsup update`: the daemon re-executes itself with the binary now on
//! disk, in place. The pid stays the same, so every process stays its
//! child; the descriptors it needs (the pid file's lock, the control
//! socket's listener, every app's listening sockets, each process's output
//! pipes and channels) stay open through the exec; what it knows goes to
//! the next image in a state file that names them. No process is stopped,
//! no accept queue closes, no output is lost.
//!
//! The old image, asked by [`Request::ReExec`](rsup_proto::control::Request):
//! 1. checks that the new binary reads this state file's version;
//! 2. takes no more requests, lets the running ones (and reloads) finish;
//! 3. pauses every reader of the processes' pipes and channels between two
//!    messages ([`super::freeze`]), and has each instance describe its
//!    process;
//! 4. writes the state file, makes those descriptors inheritable and execs
//!    `<binary> daemon --exec-state <file>`.
//!
//! If anything fails before the exec, it answers with the error and serves
//! on. The new image ([`resume`]) takes the seat and every app back from the
//! file, goes on supervising each process through a pidfd, and answers the
//! waiting `rsup update` on the same connection.

use super::held_process::HeldProcess;
use super::lifecycle::Daemon;
use super::retire;
use super::sockets::SavedSocket;
use super::state_file::{self, DaemonState};
use super::take_back::{self, Taken};
use crate::home::Home;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use rsup_proto::control::Reply;
use rsup_proto::framing::encode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

/// The state file's format: the new binary must read this very version.
pub const EXEC_STATE_VERSION: u32 = 1;

/// How long the new binary may take to say which version it reads.
const CHECK_LIMIT: Duration = Duration::from_secs(10);
/// How long the running requests and reloads may take to finish.
const QUIET_LIMIT: Duration = Duration::from_secs(60);
/// How long the readers may take to pause, and the instances to answer.
const FREEZE_LIMIT: Duration = Duration::from_secs(5);

/// What the next image of the daemon takes on.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecState {
    pub version: u32,
    /// The version of the image that wrote it.
    pub from: String,
    pub state: DaemonState,
    /// The pid file, open and locked.
    pub lock: RawFd,
    /// The control socket's listener.
    pub control: RawFd,
    /// The connection of the `rsup update` waiting for the answer.
    pub client: RawFd,
    pub sockets: Vec<HeldSocket>,
    pub processes: Vec<HeldInstance>,
    /// The link to the daemon's keeper, if it has one.
    #[serde(default)]
    pub keeper: Option<RawFd>,
    /// The health endpoints' listener, if it serves them.
    #[serde(default)]
    pub health: Option<RawFd>,
}

/// A listening socket of an app.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeldSocket {
    pub app: String,
    pub socket: SavedSocket,
    pub fd: RawFd,
}

/// The running process of an instance.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeldInstance {
    pub id: u32,
    /// PM2's `unique_id`, which the process was started with.
    pub unique_id: String,
    pub process: HeldProcess,
}

impl ExecState {
    /// Every descriptor that lives through the exec.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.lock, self.control, self.client];
        fds.extend(self.keeper);
        fds.extend(self.health);
        fds.extend(self.sockets.iter().map(|s| s.fd));
        for held in &self.processes {
            fds.extend(held.process.fds());
        }
        fds
    }
}

pub fn path(home: &Home) -> PathBuf {
    home.dir.join("exec-state.json")
}

/// Serves a re-exec request on its connection: returns only if the daemon
/// did not re-execute (having answered why).
pub async fn serve(daemon: Arc<Daemon>, exe: PathBuf, mut client: UnixStream) {
    let refused = if let Some(refusal) = daemon.retirement.refusal() {
        Some(refusal.to_string())
    } else if *daemon.apps.env.retiring.borrow() {
        Some("an update is already in progress".to_string())
    } else {
        None
    };
    let why = match refused {
        Some(why) => why,
        None => {
            // From here on no request is taken, and no crash restarted.
            daemon.apps.env.retiring.send_replace(true);
            let why = match prepare(&daemon, &exe).await {
                Err(why) => why,
                Ok(processes) => format!(
                    "the daemon could not re-execute {}: {}",
                    exe.display(),
                    exec(&daemon, &exe, processes, &client)
                ),
            };
            daemon.apps.env.freeze.thaw();
            daemon.apps.env.retiring.send_replace(false);
            why
        }
    };
    let message = format!(
        "{why}; the daemon (pid {}) serves on, unchanged",
        std::process::id()
    );
    tracing::warn!("update refused: {message}");
    let _ = client.write_all(&encode(&Reply::Error { message })).await;
}

/// Checks the new binary, waits for the running requests and reloads,
/// and pauses the readers; returns each running process. On an error the
/// caller undoes it.
async fn prepare(daemon: &Daemon, exe: &Path) -> Result<Vec<HeldInstance>, String> {
    check_binary(exe).await?;
    tracing::info!(
        "update: waiting for running requests and reloads, then re-executing as {}",
        exe.display()
    );
    if !retire::quiet(daemon, QUIET_LIMIT).await {
        return Err(format!(
            "requests or reloads still ran after {} s",
            QUIET_LIMIT.as_secs()
        ));
    }
    if !daemon.apps.env.freeze.freeze(FREEZE_LIMIT).await {
        return Err("the processes' output readers did not pause in time".into());
    }
    // What the keeper was asked to keep must reach it before the exec.
    if let Some(keeper) = &daemon.apps.env.keeper {
        keeper.flush().await;
    }
    let mut processes = Vec::new();
    for app in daemon.apps.all() {
        for instance in app.instances() {
            let held = tokio::time::timeout(FREEZE_LIMIT, instance.freeze())
                .await
                .map_err(|_| {
                    format!(
                        "{} (id {}) did not answer in time",
                        instance.identity.name, instance.identity.id
                    )
                })?;
            if let Some(process) = held {
                processes.push(HeldInstance {
                    id: instance.identity.id,
                    unique_id: instance.identity.unique_id.clone(),
                    process,
                });
            }
        }
    }
    Ok(processes)
}

/// Runs `exe daemon --exec-state-version`: it must name our version.
async fn check_binary(exe: &Path) -> Result<(), String> {
    let run = tokio::process::Command::new(exe)
        .args(["daemon", "--exec-state-version"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CHECK_LIMIT, run)
        .await
        .map_err(|_| format!("{} did not answer in time", exe.display()))?
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() && said == EXEC_STATE_VERSION.to_string() {
        return Ok(());
    }
    Err(format!(
        "{} cannot take this daemon over in place (it reads state version {}, this daemon writes {EXEC_STATE_VERSION}); stop the daemon (rsup kill) and start the apps again",
        exe.display(),
        if said.is_empty() { "none" } else { &said }
    ))
}

/// Writes the state file and execs; returns only on failure, why.
fn exec(daemon: &Daemon, exe: &Path, processes: Vec<HeldInstance>, client: &UnixStream) -> String {
    let Some((lock, control)) = daemon.retirement.seat_fds() else {
        return "the daemon is starting or stopping".into();
    };
    let apps = daemon.apps.all();
    let sockets = apps
        .iter()
        .flat_map(|app| {
            let held = app.context.sockets.lock().unwrap().held_fds();
            held.into_iter().map(|(socket, fd)| HeldSocket {
                app: app.name.to_string(),
                socket,
                fd,
            })
        })
        .collect();
    let exec_state = ExecState {
        version: EXEC_STATE_VERSION,
        from: env!("CARGO_PKG_VERSION").into(),
        state: state_file::snapshot(&daemon.apps),
        lock,
        control,
        client: client.as_raw_fd(),
        sockets,
        processes,
        keeper: daemon.apps.env.keeper.as_ref().map(|k| k.raw_fd()),
        health: daemon.health_listener.get().map(|fd| fd.as_raw_fd()),
    };
    let file = path(&daemon.apps.env.home);
    let data = match serde_json::to_vec(&exec_state) {
        Ok(data) => data,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = crate::private_file::write_atomic(&file, &data) {
        return format!("writing {}: {e}", file.display());
    }
    let fds = exec_state.fds();
    if let Err(e) = set_inheritable(&fds, true) {
        set_inheritable(&fds, false).ok();
        let _ = std::fs::remove_file(&file);
        return format!("keeping descriptors open: {e}");
    }
    tracing::info!(
        processes = exec_state.processes.len(),
        "re-executing as {}",
        exe.display()
    );
    let error = execute(exe, &file);
    // Still this image: everything back as it was.
    set_inheritable(&fds, false).ok();
    let _ = std::fs::remove_file(&file);
    error
}

fn execute(exe: &Path, state: &Path) -> String {
    let arg = |s: &OsStr| CString::new(s.as_bytes()).map_err(|e| e.to_string());
    let args = [
        arg(exe.as_os_str()),
        arg(OsStr::new("daemon")),
        arg(OsStr::new("--exec-state")),
        arg(state.as_os_str()),
    ];
    let args: Result<Vec<CString>, String> = args.into_iter().collect();
    match args {
        Ok(args) => match nix::unistd::execv(&args[0], &args) {
            Err(e) => e.to_string(),
        },
        Err(e) => e,
    }
}

fn set_inheritable(fds: &[RawFd], inheritable: bool) -> nix::Result<()> {
    let flags = if inheritable {
        FdFlag::empty()
    } else {
        FdFlag::FD_CLOEXEC
    };
    for fd in fds {
        // SAFETY: each is open, held by the daemon until the exec.
        let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
        fcntl(fd, FcntlArg::F_SETFD(flags))?;
    }
    Ok(())
}

/// Reads (and removes) the state file the previous image wrote.
pub fn read(file: &Path) -> Result<ExecState, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let _ = std::fs::remove_file(file);
    let state: ExecState = serde_json::from_slice(&data)
        .map_err(|e| format!("{}: not a state file rsup can read: {e}", file.display()))?;
    if state.version != EXEC_STATE_VERSION {
        return Err(format!(
            "{}: state version {} is not {EXEC_STATE_VERSION}",
            file.display(),
            state.version
        ));
    }
    check_fds(&state).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(state)
}

/// Each descriptor the file names is open, above stderr, and named once
/// (but a socket that apps share, named once per app): so that taking them
/// can never take the same descriptor twice, or stdout.
fn check_fds(state: &ExecState) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let shared: std::collections::HashSet<RawFd> = state.sockets.iter().map(|s| s.fd).collect();
    let mut others = vec![state.lock, state.control, state.client];
    others.extend(state.keeper);
    others.extend(state.health);
    for held in &state.processes {
        others.extend(held.process.fds());
    }
    for fd in others.iter().chain(&shared) {
        if *fd <= 2 {
            return Err(format!("descriptor {fd} is not one to take"));
        }
        if !seen.insert(*fd) {
            return Err(format!("descriptor {fd} is named twice"));
        }
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(*fd, libc::F_GETFD) } < 0 {
            return Err(format!("descriptor {fd} is not open"));
        }
    }
    Ok(())
}

/// The new image's side: takes the seat and every app back, goes on
/// supervising each process, and answers the `rsup update` that waits.
/// Returns the control socket's listener to serve.
pub async fn resume(daemon: &Arc<Daemon>, exec: ExecState) -> Result<UnixListener, String> {
    // SAFETY: the state file names each descriptor once; the previous
    // image kept them open for this one, and nothing else took them.
    let take = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = take_back::take_seat(daemon, take(exec.lock), take(exec.control))?;
    let client = std::os::unix::net::UnixStream::from(take(exec.client));
    // Apps that share an address hold one socket: its descriptor is named
    // once per app, and taken once.
    let mut taken: HashMap<RawFd, OwnedFd> = HashMap::new();
    let mut sockets = Vec::new();
    for s in &exec.sockets {
        let fd = match taken.get(&s.fd) {
            Some(fd) => fd.try_clone(),
            None => {
                let fd = take(s.fd);
                let copy = fd.try_clone();
                taken.insert(s.fd, fd);
                copy
            }
        };
        match fd {
            Ok(fd) => sockets.push((s.app.clone(), s.socket.clone(), fd)),
            Err(e) => tracing::warn!(app = %s.app, "taking a listening socket back: {e}"),
        }
    }
    drop(taken);
    // As after PM2's update, the restart counts start over.
    let Taken { kept, started } =
        take_back::take_back(daemon, &exec.state, sockets, &exec.processes, false).await?;
    let reply = Reply::Updated {
        pid: std::process::id(),
        from: exec.from.clone(),
        to: env!("CARGO_PKG_VERSION").into(),
        kept,
        started,
    };
    tracing::info!(
        from = %exec.from,
        kept,
        started,
        "re-executed in place; every app taken back"
    );
    answer(client, &reply).await;
    Ok(listener)
}

async fn answer(client: std::os::unix::net::UnixStream, reply: &Reply) {
    let stream = client
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(client));
    if let Ok(mut stream) = stream {
        let _ = tokio::time::timeout(CHECK_LIMIT, stream.write_all(&encode(reply))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs::File;
    use std::os::fd::IntoRawFd;

    fn open_fd() -> RawFd {
        File::open("/dev/null").unwrap().into_raw_fd()
    }

    fn sample(fds: &mut impl FnMut() -> RawFd) -> ExecState {
        ExecState {
            version: EXEC_STATE_VERSION,
            from: "0.1.0".into(),
            state: DaemonState {
                version: 1,
                boot_id: "b".into(),
                daemon_pid: 1,
                next_id: 0,
                apps: vec![],
            },
            lock: fds(),
            control: fds(),
            client: fds(),
            sockets: vec![],
            keeper: None,
            health: None,
            processes: vec![HeldInstance {
                id: 0,
                unique_id: "u".into(),
                process: HeldProcess {
                    pid: 1,
                    pid_started: None,
                    stdout: Some(fds()),
                    stderr: Some(fds()),
                    worker: fds(),
                    node: None,
                    uptime_ms: 0,
                    ephemeral_requests: 0,
                    said_ready: false,
                    listened: false,
                    drained: false,
                    online: true,
                    pidfd: None,
                },
            }],
        }
    }

    #[test]
    fn a_state_naming_stdout_a_closed_or_a_repeated_descriptor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exec-state.json");
        let write = |state: &ExecState| std::fs::write(&file, serde_json::to_vec(state).unwrap());
        let good = sample(&mut open_fd);
        write(&good).unwrap();
        assert_eq!(read(&file).unwrap().fds(), good.fds());
        // Read once: the file is gone.
        assert!(read(&file).is_err());

        let mut bad = sample(&mut open_fd);
        bad.lock = 1;
        write(&bad).unwrap();
        assert!(read(&file)
            .unwrap_err()
            .contains("descriptor 1 is not one to take"));
        let mut bad = sample(&mut open_fd);
        bad.control = bad.client;
        write(&bad).unwrap();
        assert!(read(&file).unwrap_err().contains("named twice"));
        let mut bad = sample(&mut open_fd);
        bad.client = 900_000;
        write(&bad).unwrap();
        assert!(read(&file).unwrap_err().contains("not open"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A damaged state file (any bytes, or a good one cut anywhere) is
        /// an error, never a panic.
        #[test]
        fn damaged_exec_states_are_errors(bytes in any::<Vec<u8>>(), cut in any::<usize>()) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("exec-state.json");
            std::fs::write(&file, &bytes).unwrap();
            let _ = read(&file);
            let mut n = 100;
            let whole = serde_json::to_vec(&sample(&mut || { n += 1; n })).unwrap();
            let cut = cut % whole.len();
            std::fs::write(&file, &whole[..cut]).unwrap();
            prop_assert!(read(&file).is_err());
        }
    }
}
