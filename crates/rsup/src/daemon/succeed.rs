//! The successor's part of `rsup update` (the conversation is described in
//! [`super::handover`]): a daemon started from the binary now on disk asks
//! the running one for its apps, receives its seat and the apps' listening
//! sockets, starts every instance on those sockets with the id, index and
//! restart count it had, and once they are ready tells the old daemon to
//! stop its processes. As a reload does for one app, the accept queues
//! never close. If anything fails before that, it stops what it started
//! and exits, and the old daemon serves on.

use super::app::{settled, Adoption, AppHandle, Op, Selection};
use super::handover::{write_pid, Conversation, FromOld, FromSuccessor, Seat, PROTOCOL};
use super::instance::Beginning;
use super::lifecycle::{write_pm2_pid, Daemon};
use super::recover::{stop_processes, survivors};
use super::sockets::SavedSocket;
use super::state_file::{self, process_start, AppState, DaemonState};
use crate::home::Home;
use crate::lines::read_line;
use nix::fcntl::{Flock, FlockArg};
use rsup_proto::app::Status;
use rsup_proto::control::{Reply, Request};
use rsup_proto::framing::{decode, encode};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

/// How long the old daemon may take to answer a ping.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// How long it may take to finish its running requests and send its
/// sockets (it allows its requests 60 s).
const SOCKETS_LIMIT: Duration = Duration::from_secs(90);
/// How long it may take to acknowledge a request to stop.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long a daemon that has closed the connection may take to be gone,
/// if it is dying.
const OLD_EXIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// Takes every app over from the daemon running in `daemon`'s home.
/// Returns the control socket's listener to serve once done; on an error
/// nothing of ours runs any more.
pub async fn take_over(daemon: &Arc<Daemon>) -> Result<UnixListener, String> {
    let home = &daemon.apps.env.home;
    // Until we serve, the old daemon's processes run too.
    daemon
        .apps
        .env
        .pid_files_shared
        .store(true, Ordering::SeqCst);
    let (old_pid, old_version) = ping(home).await?;
    let old = format!("the running daemon (pid {old_pid}, version {old_version})");
    tracing::info!(
        "taking over from {old} as version {}",
        env!("CARGO_PKG_VERSION")
    );
    let mut conversation = Conversation::new(connect(home).await?, b"");
    conversation
        .send(&Request::HandOver { protocol: PROTOCOL })
        .await
        .map_err(|e| format!("asking {old} to hand over: {e}"))?;
    let received = timeout(SOCKETS_LIMIT, receive(&mut conversation, &old))
        .await
        .map_err(|_| {
            format!(
                "{old} did not hand over within {} s",
                SOCKETS_LIMIT.as_secs()
            )
        })??;
    let state = read_state(home, old_pid)?;
    let mut taking = Taking {
        daemon: daemon.clone(),
        conversation,
        launches: daemon.apps.env.launches.listen(),
        apps: Vec::new(),
        old: Old {
            pid: old_pid,
            started: process_start(old_pid),
            name: old,
        },
        old_gone: false,
    };
    let result = taking.adopt_all(&state, received).await;
    daemon.apps.env.launches.stop_listening();
    match result {
        Ok((seat, listener)) => Ok(taking.finish(state, seat, listener)),
        Err((e, seat)) => {
            taking.undo(seat).await;
            Err(e)
        }
    }
}

/// What the old daemon handed over.
struct Received {
    lock: OwnedFd,
    control: OwnedFd,
    sockets: Vec<(String, SavedSocket, OwnedFd)>,
    own_port: Vec<String>,
}

async fn receive(conversation: &mut Conversation, old: &str) -> Result<Received, String> {
    let first = conversation
        .recv_line()
        .await
        .map_err(|e| format!("reading {old}'s answer: {e}"))?
        .ok_or_else(|| format!("{old} closed the connection without answering"))?;
    if let Ok(Reply::Error { message }) = decode::<Reply>(&first) {
        if message.contains("unknown variant `hand_over`") {
            return Err(format!(
                "{old} predates `rsup update` and cannot hand over; restart it (rsup kill, then start the apps again)"
            ));
        }
        return Err(format!("{old} refused to hand over: {message}"));
    }
    let mut lock = None;
    let mut control = None;
    let mut sockets = Vec::new();
    let mut line = Some(first);
    loop {
        let bytes = match line.take() {
            Some(l) => l,
            None => conversation
                .recv_line()
                .await
                .map_err(|e| format!("reading from {old}: {e}"))?
                .ok_or_else(|| format!("{old} closed the connection half-way"))?,
        };
        let message: FromOld =
            decode(&bytes).map_err(|e| format!("{old} sent something unreadable: {e}"))?;
        let mut fd = || {
            conversation
                .take_fd()
                .ok_or_else(|| format!("{old} sent {message:?} without its descriptor"))
        };
        match &message {
            FromOld::Lock => lock = Some(fd()?),
            FromOld::ControlSocket => control = Some(fd()?),
            FromOld::Socket { app, socket } => {
                sockets.push((app.clone(), socket.clone(), fd()?));
            }
            FromOld::Ready { own_port } => {
                let missing = |what| format!("{old} did not send its {what}");
                return Ok(Received {
                    lock: lock.ok_or_else(|| missing("lock"))?,
                    control: control.ok_or_else(|| missing("control socket"))?,
                    sockets,
                    own_port: own_port.clone(),
                });
            }
            other => return Err(format!("{old} sent {other:?} out of turn")),
        }
    }
}

/// The state the old daemon wrote as the hand-over began.
fn read_state(home: &Home, old_pid: u32) -> Result<DaemonState, String> {
    let path = state_file::path(&home.dir);
    match state_file::read(&path)? {
        Some(state) if state.daemon_pid == old_pid => Ok(state),
        Some(state) => Err(format!(
            "{} is daemon pid {}'s, not pid {old_pid}'s",
            path.display(),
            state.daemon_pid
        )),
        None => Err(format!("{} is missing", path.display())),
    }
}

/// A failure before the end, with the seat to leave.
type Failure = (String, Option<Seat>);

/// The daemon taken over from.
struct Old {
    pid: u32,
    started: Option<u64>,
    /// As messages name it.
    name: String,
}

impl Old {
    fn alive(&self) -> bool {
        self.started.is_some() && process_start(self.pid) == self.started
    }
}

/// A take-over under way.
struct Taking {
    daemon: Arc<Daemon>,
    conversation: Conversation,
    launches: UnboundedReceiver<(String, u32)>,
    /// The apps created so far.
    apps: Vec<AppHandle>,
    old: Old,
    /// The old daemon died half-way (it did not hang up to serve on), or
    /// stopped answering at the end: what it left is ours to stop, as after
    /// a crash.
    old_gone: bool,
}

impl Taking {
    /// Creates every app and starts its instances, and once all are ready
    /// has the old daemon stop its processes: the seat and the control
    /// socket's listener are ours from then on.
    async fn adopt_all(
        &mut self,
        state: &DaemonState,
        received: Received,
    ) -> Result<(Seat, UnixListener), Failure> {
        let seat = Seat {
            lock: Flock::lock(File::from(received.lock), FlockArg::LockExclusiveNonblock)
                .map_err(|(_, e)| (format!("the pid file handed over is not locked: {e}"), None))?,
            control: received.control,
        };
        let listener = match listener_of(&seat) {
            Ok(listener) => listener,
            Err(e) => return Err((e, Some(seat))),
        };
        let adopted = self
            .adopt_apps(state, received.sockets, &received.own_port)
            .await;
        match adopted {
            Ok(()) => {}
            Err(e) => return Err((e, Some(seat))),
        }
        match self.stop_yours().await {
            Ok(()) => Ok((seat, listener)),
            Err(e) => Err((e, Some(seat))),
        }
    }

    /// Writes the state and tells the old daemon to stop its processes;
    /// past this point the successor serves. Should the old daemon have
    /// died, its processes are ours to stop.
    async fn stop_yours(&mut self) -> Result<(), String> {
        let path = state_file::path(&self.daemon.apps.env.home.dir);
        let ours = state_file::snapshot(&self.daemon.apps);
        if let Err(e) = state_file::write(&path, &ours) {
            // Not fatal: the file is written again at the next change.
            tracing::warn!("writing {}: {e}", path.display());
        }
        if self.old_gone {
            return Ok(());
        }
        let _ = self.conversation.send(&FromSuccessor::StopYours).await;
        let answer = timeout(STOP_LIMIT, self.conversation.recv::<FromOld>()).await;
        match answer {
            Ok(Ok(Some(FromOld::Stopping))) => Ok(()),
            Ok(Ok(Some(other))) => Err(format!("{} sent {other:?} out of turn", self.old.name)),
            Err(_) => {
                // Stuck, or stopping without a word: an outage either way
                // if we stopped too.
                tracing::warn!("{} did not answer in time", self.old.name);
                self.old_gone = true;
                Ok(())
            }
            Ok(_) => self.old_hung_up().await,
        }
    }

    async fn adopt_apps(
        &mut self,
        state: &DaemonState,
        sockets: Vec<(String, SavedSocket, OwnedFd)>,
        own_port: &[String],
    ) -> Result<(), String> {
        let apps = &self.daemon.apps;
        apps.env.ids_from(state.next_id);
        let specs = state
            .apps
            .iter()
            .map(|a| {
                let mut spec = a.spec.clone();
                spec.instances = a.instances.len().max(1) as u32;
                spec
            })
            .collect();
        self.apps = apps.create(specs)?;
        for app in &self.apps {
            let mut held = app.context.sockets.lock().unwrap();
            // The old daemon serves these too until it is done.
            held.leave_paths(true);
            for (_, saved, fd) in sockets.iter().filter(|(name, ..)| *name == *app.name) {
                if let Ok(fd) = fd.try_clone() {
                    held.adopt(saved, fd);
                }
            }
        }
        drop(sockets);

        // Beside the old processes first; then, one app at a time, those
        // that bind their own ports, after the old daemon stops its.
        let (alone, beside): (Vec<_>, Vec<_>) = self
            .apps
            .clone()
            .into_iter()
            .zip(&state.apps)
            .partition(|(app, _)| own_port.iter().any(|n| *n == *app.name));
        let mut set = tokio::task::JoinSet::new();
        for (app, app_state) in beside {
            let adoptions = adoptions(app_state, true);
            set.spawn(async move { settled(app.run(Op::Adopt(adoptions)).await).await });
        }
        while !set.is_empty() {
            tokio::select! {
                Some(joined) = set.join_next() => {
                    joined.map_err(|e| format!("internal error: {e}"))??;
                }
                Some((app, pid)) = self.launches.recv() => self.tell_launch(app, pid).await?,
                // It says nothing now: it has hung up.
                _ = self.conversation.recv_line(), if !self.old_gone => self.old_hung_up().await?,
            }
        }
        for (app, app_state) in alone {
            tracing::info!(app = %app.name, "it binds its own ports: the old processes stop first");
            self.ask_stop(app_state).await?;
            let adoptions = adoptions(app_state, false);
            let run = async { settled(app.run(Op::Adopt(adoptions)).await).await };
            tokio::pin!(run);
            loop {
                tokio::select! {
                    done = &mut run => { done?; break }
                    Some((app, pid)) = self.launches.recv() => self.tell_launch(app, pid).await?,
                }
            }
        }
        // Whatever launched last.
        while let Ok((app, pid)) = self.launches.try_recv() {
            self.tell_launch(app, pid).await?;
        }
        self.check_online(state)
    }

    async fn tell_launch(&mut self, app: String, pid: u32) -> Result<(), String> {
        if self.old_gone {
            return Ok(());
        }
        let message = FromSuccessor::Launched { app, pid };
        if self.conversation.send(&message).await.is_err() {
            self.old_hung_up().await?;
        }
        Ok(())
    }

    /// Has the old daemon stop an app's processes, or stops them itself
    /// when the old daemon died.
    async fn ask_stop(&mut self, app: &AppState) -> Result<(), String> {
        let name = app.spec.name.clone();
        if !self.old_gone {
            let message = FromSuccessor::StopApp { app: name.clone() };
            let answer = match self.conversation.send(&message).await {
                Ok(()) => self.conversation.recv::<FromOld>().await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Some(FromOld::AppStopped { app })) if app == name => return Ok(()),
                Ok(Some(other)) => {
                    return Err(format!("{} sent {other:?} out of turn", self.old.name))
                }
                _ => self.old_hung_up().await?,
            }
        }
        stop_processes(&app.spec, &survivors(app)).await;
        Ok(())
    }

    /// The connection ended: fine if the old daemon died (what it left is
    /// then ours to stop), the end of the take-over if it hung up to serve
    /// on. A dying process closes its descriptors a moment before it is
    /// gone, hence the wait.
    async fn old_hung_up(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + OLD_EXIT;
        while self.old.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if self.old.alive() {
            return Err(format!("{} ended the hand-over", self.old.name));
        }
        tracing::warn!("{} died half-way; taking over what it left", self.old.name);
        self.old_gone = true;
        Ok(())
    }

    /// Every instance that was online under the old daemon is online now.
    fn check_online(&self, state: &DaemonState) -> Result<(), String> {
        let mut failures = Vec::new();
        for (app, app_state) in self.apps.iter().zip(&state.apps) {
            for h in app.instances() {
                let was = app_state.instances.iter().find(|r| r.id == h.identity.id);
                let now = h.state().status;
                if was.is_some_and(|r| r.status == Status::Online) && now != Status::Online {
                    failures.push(format!(
                        "{} (id {}) is {} under the new daemon; see {}",
                        h.identity.name,
                        h.identity.id,
                        now.as_str(),
                        h.identity.err_log.display()
                    ));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// The old daemon stops its processes (or has died): take the seat.
    fn finish(self, state: DaemonState, seat: Seat, listener: UnixListener) -> UnixListener {
        if self.old_gone {
            tracing::warn!("stopping the processes {} left", self.old.name);
            // Meanwhile they serve beside ours, and we serve the CLI.
            tokio::spawn(async move { stop_left(&state).await });
        }
        for app in &self.apps {
            app.context.sockets.lock().unwrap().leave_paths(false);
        }
        self.daemon
            .apps
            .env
            .pid_files_shared
            .store(false, Ordering::SeqCst);
        if let Err(e) = write_pid(&seat.lock) {
            tracing::warn!("writing the pid file: {e}");
        }
        if let Err(e) = write_pm2_pid(&self.daemon.apps.env.home) {
            tracing::warn!("{e:#}");
        }
        self.daemon.retirement.set_seat(seat);
        let old = self.old.name.clone();
        let mut conversation = self.conversation;
        tokio::spawn(async move {
            // The old daemon closes once its processes are gone.
            while let Ok(Some(_)) = conversation.recv_line().await {}
            tracing::info!("{old} has stopped its processes and exited");
        });
        tracing::info!("took every app over; serving");
        listener
    }

    /// Stops every instance of ours and gives the seat back to the old
    /// daemon, which serves on once the connection closes.
    async fn undo(mut self, seat: Option<Seat>) {
        tracing::warn!("stopping the processes this daemon started");
        let mut set = tokio::task::JoinSet::new();
        for app in std::mem::take(&mut self.apps) {
            set.spawn(async move { app.run(Op::Remove(Selection::All)).await });
        }
        while set.join_next().await.is_some() {}
        if let Some(seat) = seat {
            seat.leave();
        }
    }
}

/// A listener on the control socket handed over, for the daemon's loop.
fn listener_of(seat: &Seat) -> Result<UnixListener, String> {
    seat.control
        .try_clone()
        .map(std::os::unix::net::UnixListener::from)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            UnixListener::from_std(l)
        })
        .map_err(|e| format!("taking the control socket: {e}"))
}

/// How each instance of `app` begins under the new daemon: with its id,
/// index and restart count, down if it was down.
fn adoptions(app: &AppState, beside_old: bool) -> Vec<Adoption> {
    app.instances
        .iter()
        .map(|r| Adoption {
            id: r.id,
            instance: r.instance,
            beginning: Beginning {
                restarts: r.restarts,
                down: match r.status {
                    Status::Stopped | Status::Stopping => Some(Status::Stopped),
                    Status::Errored => Some(Status::Errored),
                    _ => None,
                },
                taking_over: beside_old,
                held: None,
            },
        })
        .collect()
}

/// Stops the old daemon's processes that still run, when it cannot.
async fn stop_left(state: &DaemonState) {
    for app in &state.apps {
        let pids = survivors(app);
        if !pids.is_empty() {
            stop_processes(&app.spec, &pids).await;
        }
    }
}

/// Connects to the running daemon, which must be our user's or root's.
async fn connect(home: &Home) -> Result<UnixStream, String> {
    let socket = home.socket();
    let stream = UnixStream::connect(&socket)
        .await
        .map_err(|e| format!("no daemon to take over from at {}: {e}", socket.display()))?;
    let uid = stream
        .peer_cred()
        .map_err(|e| format!("reading who listens at {}: {e}", socket.display()))?
        .uid();
    let me = nix::unistd::geteuid().as_raw();
    if uid != me && uid != 0 {
        return Err(format!(
            "{} is served by uid {uid}, not by this user (uid {me})",
            socket.display()
        ));
    }
    Ok(stream)
}

/// The running daemon's pid and version.
async fn ping(home: &Home) -> Result<(u32, String), String> {
    let answer = async {
        let mut stream = connect(home).await?;
        stream
            .write_all(&encode(&Request::Ping))
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        match read_line(&mut reader, &mut line).await {
            Ok(true) => decode::<Reply>(&line).map_err(|e| e.to_string()),
            Ok(false) => Err("closed without answering".to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    match timeout(ANSWER_LIMIT, answer).await {
        Ok(Ok(Reply::Pong { pid, version, .. })) => Ok((pid, version)),
        Ok(Ok(other)) => Err(format!("the running daemon answered a ping with {other:?}")),
        Ok(Err(e)) => Err(format!("pinging the running daemon: {e}")),
        Err(_) => Err(format!(
            "the running daemon did not answer a ping within {} s",
            ANSWER_LIMIT.as_secs()
        )),
    }
}
