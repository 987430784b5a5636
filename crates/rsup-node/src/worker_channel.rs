//! rsup's worker channel: the Unix stream socket named by `RSUP_FD`.
//!
//! The descriptor is claimed once, on first use: it must be a stream
//! socket (a stale variable inherited from a grandparent can name any
//! descriptor, or none), and it is marked close-on-exec so the app's own
//! children do not inherit it. The JS side removes the variable from
//! `process.env`, which Node keeps apart from the C environment.

use crate::worker_reader::{read_messages, Notice, Replies, Reply, WaitError};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rsup_proto::framing::encode;
use rsup_proto::worker::{ListenAddress, ShutdownReason, WorkerMessage, FD_ENV};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

static CHANNEL: OnceLock<Option<UnixStream>> = OnceLock::new();
static READER: OnceLock<io::Result<()>> = OnceLock::new();
static REPLIES: LazyLock<Replies> = LazyLock::new(Replies::default);
static SHUTDOWN: Mutex<ShutdownSink> = Mutex::new(ShutdownSink::Unwatched(None));
static ACCEPT: Mutex<NoticeSink> = Mutex::new(NoticeSink::Unwatched(false));
static CLOSED: Mutex<NoticeSink> = Mutex::new(NoticeSink::Unwatched(false));
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The shutdown callback's arguments: the supervisor's deadline in
/// milliseconds, and why (`"reload"`, `"stop"`; undefined when the
/// supervisor does not say or says something this version does not know).
type ShutdownArgs = FnArgs<(f64, Option<&'static str>)>;

/// Called with [`ShutdownArgs`]. Weak: a process waiting for a message
/// that may never come must still be free to exit.
type ShutdownCallback = ThreadsafeFunction<ShutdownArgs, (), ShutdownArgs, Status, false, true>;

/// A shutdown message as the callback gets it.
#[derive(Clone, Copy)]
struct ShutdownNotice {
    deadline_ms: u64,
    reason: Option<ShutdownReason>,
}

impl ShutdownNotice {
    fn args(self) -> ShutdownArgs {
        let reason = self.reason.and_then(ShutdownReason::name);
        FnArgs::from((self.deadline_ms as f64, reason))
    }
}

/// Called on a notice without a value (accept, closed). Weak, as above.
type NoticeCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Where accept (or closed) notices go; one that came before anyone
/// watched is kept.
enum NoticeSink {
    Unwatched(bool),
    Watched(NoticeCallback),
}

fn deliver(sink: &Mutex<NoticeSink>) {
    match &mut *sink.lock().unwrap() {
        NoticeSink::Watched(callback) => {
            callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
        NoticeSink::Unwatched(seen) => *seen = true,
    }
}

/// Calls `callback` for each notice of `sink`, including one that came
/// before; false when it is already watched.
fn watch(sink: &Mutex<NoticeSink>, callback: Function<(), ()>) -> Result<bool> {
    let mut sink = sink.lock().unwrap();
    let NoticeSink::Unwatched(missed) = &*sink else {
        return Ok(false);
    };
    let missed = *missed;
    let callback: NoticeCallback = callback
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .build()?;
    if missed {
        callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
    *sink = NoticeSink::Watched(callback);
    Ok(true)
}

/// Where shutdown messages go. The reader may start (for a listen) before
/// anyone watches; the last one seen is kept for the watcher.
enum ShutdownSink {
    Unwatched(Option<ShutdownNotice>),
    Watched(ShutdownCallback),
}

fn channel() -> Option<&'static UnixStream> {
    CHANNEL.get_or_init(claim_from_env).as_ref()
}

fn claim_from_env() -> Option<UnixStream> {
    let fd: RawFd = std::env::var(FD_ENV).ok()?.trim().parse().ok()?;
    // rsup never hands over stdio; anything below 3 is a stale variable.
    if fd < 3 || !is_stream_socket(fd) {
        return None;
    }
    // Node already marks inherited descriptors close-on-exec at start-up;
    // other hosts of the addon may not.
    set_cloexec(fd).ok()?;
    // SAFETY: the descriptor is open, is a socket, and nothing else in this
    // process owns it: the supervisor left it for exactly this library.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // The reader thread blocks on it; the supervisor may have created it
    // non-blocking.
    stream.set_nonblocking(false).ok()?;
    Some(stream)
}

/// Starts the one reader thread of the channel, if not yet running.
fn start_reader(stream: &'static UnixStream) -> Result<()> {
    let started = READER.get_or_init(|| {
        std::thread::Builder::new()
            .name("rsup-channel".into())
            .spawn(move || read_messages(stream.as_raw_fd(), &REPLIES, on_notice))
            .map(drop)
    });
    match started {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::from_reason(format!(
            "rsup worker channel: reader: {e}"
        ))),
    }
}

fn on_notice(notice: Notice) {
    match notice {
        Notice::Shutdown(deadline_ms, reason) => on_shutdown(ShutdownNotice {
            deadline_ms,
            reason,
        }),
        Notice::Accept => deliver(&ACCEPT),
        Notice::Closed => deliver(&CLOSED),
    }
}

fn on_shutdown(notice: ShutdownNotice) {
    match &mut *SHUTDOWN.lock().unwrap() {
        ShutdownSink::Watched(callback) => {
            callback.call(notice.args(), ThreadsafeFunctionCallMode::NonBlocking);
        }
        ShutdownSink::Unwatched(last) => *last = Some(notice),
    }
}

fn is_stream_socket(fd: RawFd) -> bool {
    // SAFETY: fstat and getsockopt only write into the buffers given.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return false;
        }
        let mut kind: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
            && kind == libc::SOCK_STREAM
    }
}

pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor we checked is open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor we checked is open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn channel_error(e: io::Error) -> Error {
    Error::from_reason(format!("rsup worker channel: {e}"))
}

/// Keeps the worker channel's descriptor open across exec, without
/// claiming it, for a process that does not use the channel but starts the
/// one that will (a package manager's node running the app's). Node marks
/// every inherited descriptor close-on-exec at start-up. Returns whether
/// there was such a descriptor to pass on.
#[napi]
pub fn worker_channel_pass_on() -> bool {
    if CHANNEL.get().is_some() {
        return false; // claimed here: the app's children are not workers
    }
    let Some(fd) = std::env::var(FD_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<RawFd>().ok())
    else {
        return false;
    };
    fd >= 3 && is_stream_socket(fd) && clear_cloexec(fd).is_ok()
}

/// Whether rsup gave this process a worker channel. The first call claims
/// the descriptor.
#[napi]
pub fn worker_channel_open() -> bool {
    channel().is_some()
}

fn send(msg: &WorkerMessage) -> Result<()> {
    let mut stream = channel().ok_or_else(|| Error::from_reason("no rsup worker channel"))?;
    stream.write_all(&encode(msg)).map_err(channel_error)
}

/// Tells rsup the app is ready for traffic.
#[napi]
pub fn worker_send_ready() -> Result<()> {
    send(&WorkerMessage::Ready)
}

/// Tells rsup that, after its shutdown message, the listening sockets it
/// gave are closed and their connections are done.
#[napi]
pub fn worker_send_drained() -> Result<()> {
    send(&WorkerMessage::Drained)
}

/// Calls `on_shutdown(deadline_ms, reason)` for each shutdown message,
/// including one that came before this call. Returns false when there is
/// no channel or it is already watched.
#[napi]
pub fn worker_watch_shutdown(
    on_shutdown: Function<FnArgs<(f64, Option<&'static str>)>, ()>,
) -> Result<bool> {
    let Some(stream) = channel() else {
        return Ok(false);
    };
    let mut sink = SHUTDOWN.lock().unwrap();
    let ShutdownSink::Unwatched(missed) = &*sink else {
        return Ok(false);
    };
    let missed = *missed;
    let callback: ShutdownCallback = on_shutdown
        .build_threadsafe_function::<ShutdownArgs>()
        .weak::<true>()
        .build()?;
    if let Some(notice) = missed {
        callback.call(notice.args(), ThreadsafeFunctionCallMode::NonBlocking);
    }
    *sink = ShutdownSink::Watched(callback);
    drop(sink);
    start_reader(stream)?;
    Ok(true)
}

/// Calls `on_accept()` for each accept message (the supervisor treats the
/// worker as ready and wants it to accept connections), including one that
/// came before this call. Returns false when there is no channel or it is
/// already watched.
#[napi]
pub fn worker_watch_accept(on_accept: Function<(), ()>) -> Result<bool> {
    let Some(stream) = channel() else {
        return Ok(false);
    };
    if !watch(&ACCEPT, on_accept)? {
        return Ok(false);
    }
    start_reader(stream)?;
    Ok(true)
}

/// Calls `on_closed()` once the channel closes: the supervisor is gone
/// (killed, crashed), and the process's kill signal will come from the one
/// that takes its place, with no shutdown message before it. Returns false
/// when there is no channel or it is already watched.
#[napi]
pub fn worker_watch_closed(on_closed: Function<(), ()>) -> Result<bool> {
    let Some(stream) = channel() else {
        return Ok(false);
    };
    if !watch(&CLOSED, on_closed)? {
        return Ok(false);
    }
    start_reader(stream)?;
    Ok(true)
}

/// Where to listen: `path` for a Unix socket, else TCP `host` (absent:
/// every address) and `port` (0: a free port shared by the app's instances).
#[napi(object)]
pub struct ListenTarget {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub path: Option<String>,
}

/// The supervisor's answer: `fd`, a listening socket now owned by the
/// caller, or the bind error as Node names it (`errno` positive).
#[napi(object)]
pub struct ListenOutcome {
    pub fd: Option<i32>,
    pub code: Option<String>,
    pub errno: Option<i32>,
    pub message: Option<String>,
}

/// Asks the supervisor for the app's listening socket for `target` and
/// blocks until it answers, so `server.listen()` keeps Node's ordering.
/// Throws when the channel fails or no answer comes within `timeout_ms`
/// (a supervisor that does not hand out sockets never answers).
#[napi]
pub fn worker_listen(target: ListenTarget, timeout_ms: u32) -> Result<ListenOutcome> {
    let address = match (target.path, target.port) {
        (Some(path), _) => ListenAddress::Unix { path },
        (None, Some(port)) => ListenAddress::Tcp {
            host: target.host,
            port: u16::try_from(port)
                .map_err(|_| Error::from_reason(format!("bad port {port}")))?,
        },
        (None, None) => return Err(Error::from_reason("listen target needs a port or a path")),
    };
    let stream = channel().ok_or_else(|| Error::from_reason("no rsup worker channel"))?;
    start_reader(stream)?;
    let request = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    send(&WorkerMessage::Listen { request, address })?;
    match REPLIES.wait(request, Duration::from_millis(timeout_ms.into())) {
        Ok(Reply::Socket(fd)) => Ok(ListenOutcome {
            fd: Some(fd.into_raw_fd()),
            code: None,
            errno: None,
            message: None,
        }),
        Ok(Reply::Failed(e)) => Ok(ListenOutcome {
            fd: None,
            code: Some(e.code),
            errno: Some(e.errno),
            message: Some(e.message),
        }),
        Err(WaitError::TimedOut) => Err(Error::from_reason(format!(
            "rsup worker channel: no answer to listen within {timeout_ms} ms"
        ))),
        Err(WaitError::Closed) => Err(Error::from_reason("rsup worker channel: closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_stream_sockets() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(is_stream_socket(a.as_raw_fd()));
        let (d, _e) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert!(!is_stream_socket(d.as_raw_fd()));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_stream_socket(file.as_raw_fd()));
        assert!(!is_stream_socket(-1));
    }

    #[test]
    fn marks_the_descriptor_close_on_exec_and_back() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        // SAFETY: plain fcntl on a descriptor this test owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        set_cloexec(fd).unwrap();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        clear_cloexec(fd).unwrap();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
    }
}
