//! rsup's worker channel: the Unix stream socket named by `RSUP_FD`.
//!
//! The descriptor is claimed once, on first use: it must be a stream
//! socket (a stale variable inherited from a grandparent can name any
//! descriptor, or none), and it is marked close-on-exec so the app's own
//! children do not inherit it. The JS side removes the variable from
//! `process.env`, which Node keeps apart from the C environment.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use rsup_proto::framing::{decode, encode, MAX_LINE};
use rsup_proto::worker::{SupervisorMessage, WorkerMessage, FD_ENV};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static CHANNEL: OnceLock<Option<UnixStream>> = OnceLock::new();
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Called with the supervisor's deadline in milliseconds. Weak: a process
/// waiting for a message that may never come must still be free to exit.
type ShutdownCallback = ThreadsafeFunction<f64, (), f64, Status, false, true>;

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

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor we checked is open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn channel_error(e: io::Error) -> Error {
    Error::from_reason(format!("rsup worker channel: {e}"))
}

/// Whether rsup gave this process a worker channel. The first call claims
/// the descriptor.
#[napi]
pub fn worker_channel_open() -> bool {
    channel().is_some()
}

/// Tells rsup the app is ready for traffic.
#[napi]
pub fn worker_send_ready() -> Result<()> {
    let mut stream = channel().ok_or_else(|| Error::from_reason("no rsup worker channel"))?;
    stream
        .write_all(&encode(&WorkerMessage::Ready))
        .map_err(channel_error)
}

/// Starts reading the channel on a thread of its own and calls
/// `on_shutdown(deadline_ms)` for each shutdown message. Returns false when
/// there is no channel or it is already being read.
#[napi]
pub fn worker_watch_shutdown(on_shutdown: Function<f64, ()>) -> Result<bool> {
    let Some(stream) = channel() else {
        return Ok(false);
    };
    if WATCHING.swap(true, Ordering::SeqCst) {
        return Ok(false);
    }
    let callback: ShutdownCallback = on_shutdown
        .build_threadsafe_function::<f64>()
        .weak::<true>()
        .build()?;
    let reader = stream.try_clone().map_err(channel_error)?;
    std::thread::Builder::new()
        .name("rsup-channel".into())
        .spawn(move || read_messages(reader, callback))
        .map_err(channel_error)?;
    Ok(true)
}

fn read_messages(stream: UnixStream, on_shutdown: ShutdownCallback) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded so a misbehaving peer cannot grow this buffer without end.
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            // The supervisor closed its end; nothing more will come.
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        // Messages this version does not know are skipped, so a newer
        // supervisor can add some.
        if let Ok(SupervisorMessage::Shutdown { deadline_ms }) = decode(&line) {
            on_shutdown.call(deadline_ms as f64, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
    fn marks_the_descriptor_close_on_exec() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        // SAFETY: plain fcntl on a descriptor this test owns.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        set_cloexec(fd).unwrap();
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}
