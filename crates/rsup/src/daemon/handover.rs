//! `rsup update`: a daemon handing its apps, their listening sockets and
//! its seat in `RSUP_HOME` to a successor (the binary now on disk), over
//! one control connection. Here is what both sides say, and the connection
//! that carries descriptors with what is said; the old daemon's part is in
//! [`super::retire`], the successor's in [`super::succeed`].
//!
//! After the successor's control request `{"cmd":"hand_over"}`, the old
//! daemon either refuses with a control `Reply::Error` (an older daemon
//! does so by not knowing the request) or, once the requests it was
//! running have finished and its state file is written, sends:
//!
//! 1. `lock`: the open, locked pid file. The lock belongs to the open file,
//!    so both daemons hold it from here on, and a third can never start in
//!    between;
//! 2. `control_socket`: the listener of `rsup.sock`, which neither accepts
//!    on until the successor serves (clients wait in its queue meanwhile);
//! 3. `socket`, for every listening socket of every app;
//! 4. `ready`, naming the apps that bind their own ports.
//!
//! The successor then starts the apps' instances on those sockets, telling
//! the old daemon of each process it launches (`launched`), asks it to stop
//! the apps that bind their own ports first (`stop_app`, answered by
//! `app_stopped`), and once its instances are ready says `stop_yours`; the
//! old daemon answers `stopping`, stops its processes gracefully and exits.
//! If the connection ends before `stop_yours`, the old daemon serves on:
//! it never gave up its lock or its listener, only stopped using them.

use super::sockets::SavedSocket;
use nix::fcntl::Flock;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use rsup_proto::framing::{decode, encode, LineBuffer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

/// The version of the conversation below; a daemon refuses another.
pub const PROTOCOL: u32 = 1;

/// Old daemon → successor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "handover", rename_all = "snake_case")]
pub enum FromOld {
    /// The pid file, open and locked (one descriptor).
    Lock,
    /// The control socket's listener (one descriptor).
    ControlSocket,
    /// One of an app's listening sockets (one descriptor).
    Socket {
        app: String,
        socket: SavedSocket,
    },
    /// Everything is sent and the state file written. Until the hand-over
    /// ends the old daemon takes no request and restarts nothing.
    /// `own_port`: apps whose processes bind ports themselves, which must
    /// stop before new ones can bind them.
    Ready {
        own_port: Vec<String>,
    },
    AppStopped {
        app: String,
    },
    /// The old daemon stops its processes, then exits.
    Stopping,
}

/// Successor → old daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "handover", rename_all = "snake_case")]
pub enum FromSuccessor {
    /// A process the successor has just started, for the old daemon to
    /// stop should the successor die before the end.
    Launched { app: String, pid: u32 },
    /// Stop this app's processes now (it binds its own ports).
    StopApp { app: String },
    /// The successor's instances are ready: stop yours and go.
    StopYours,
}

/// A daemon's seat in `RSUP_HOME`: what makes it the one daemon there.
pub struct Seat {
    /// The pid file, open and locked.
    pub lock: Flock<File>,
    /// A duplicate of the control socket's listener.
    pub control: OwnedFd,
}

impl Seat {
    /// Leaves the seat to a successor that holds the same open pid file:
    /// our descriptors close, and the lock, which belongs to the open file
    /// rather than to a descriptor, stays held by the successor's.
    pub fn leave(self) {
        let raw = self.lock.as_raw_fd();
        // Dropping the `Flock` would unlock the file for both of us.
        std::mem::forget(self.lock);
        // SAFETY: `raw` was the forgotten file's own descriptor, which
        // nothing else closes.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
}

/// Writes our pid into the pid file, whose open file (and offset) another
/// daemon may share.
pub fn write_pid(lock: &File) -> io::Result<()> {
    lock.set_len(0)?;
    lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
}

/// Descriptors accepted per read. One travels with each message, and Linux
/// never merges the descriptors of two sends into one read.
const MAX_FDS: usize = 4;

/// The hand-over connection: whole messages, each with the descriptors
/// that came with it.
pub struct Conversation {
    stream: UnixStream,
    lines: LineBuffer,
    /// Lines read and not yet asked for.
    ready: VecDeque<Vec<u8>>,
    /// Descriptors received and not yet taken, in arrival order. One sent
    /// with a message arrives with its first byte, so it is here by the
    /// time the message's line is complete.
    fds: VecDeque<OwnedFd>,
    closed: bool,
}

impl Conversation {
    /// `already_read`: bytes read from the stream before (with the request
    /// that began the conversation).
    pub fn new(stream: UnixStream, already_read: &[u8]) -> Conversation {
        let mut conversation = Conversation {
            stream,
            lines: LineBuffer::new(),
            ready: VecDeque::new(),
            fds: VecDeque::new(),
            closed: false,
        };
        // A line too long here ends the conversation at the first read.
        let _ = conversation.take_lines(already_read);
        conversation
    }

    /// The peer's pid and uid, as the kernel knows them.
    pub fn peer(&self) -> Option<(u32, u32)> {
        let cred = self.stream.peer_cred().ok()?;
        let pid = u32::try_from(cred.pid()?).ok().filter(|p| *p > 1)?;
        Some((pid, cred.uid()))
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> io::Result<()> {
        self.stream.write_all(&encode(msg)).await
    }

    /// Sends `msg` with `fd` attached.
    pub async fn send_with_fd<T: Serialize>(
        &mut self,
        msg: &T,
        fd: BorrowedFd<'_>,
    ) -> io::Result<()> {
        super::channels::send_with_fd(&self.stream, &encode(msg), fd).await
    }

    /// The next message (the descriptors that came with it are for
    /// [`Conversation::take_fd`]); `Ok(None)` once the peer has closed.
    /// Safe to cancel: what was read stays for the next call.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        let Some(line) = self.recv_line().await? else {
            return Ok(None);
        };
        decode(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// The next line; `Ok(None)` once the peer has closed.
    pub async fn recv_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.closed {
                return Ok(self.lines.finish());
            }
            let mut buf = [0u8; 4096];
            let n = self.read_chunk(&mut buf).await?;
            if n == 0 {
                self.closed = true;
            }
            self.take_lines(&buf[..n])?;
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    /// Closes every descriptor received and not taken: a side that expects
    /// none calls it after each message.
    pub fn drop_fds(&mut self) {
        self.fds.clear();
    }

    fn take_lines(&mut self, chunk: &[u8]) -> io::Result<()> {
        for line in self.lines.push(chunk) {
            match line {
                Ok(line) => self.ready.push_back(line),
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        Ok(())
    }

    async fn read_chunk(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let raw = self.stream.as_raw_fd();
        let fds = &mut self.fds;
        self.stream
            .async_io(Interest::READABLE, || recv_with_fds(raw, buf, fds))
            .await
    }
}

/// One `recvmsg`: bytes into `buf`, descriptors (close-on-exec) onto `fds`.
fn recv_with_fds(socket: RawFd, buf: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: the kernel has just installed this descriptor
                // for us; nothing else refers to it.
                fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors than one message carries",
        ));
    }
    Ok(msg.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::worker::ListenAddress;
    use std::os::fd::AsFd;

    fn pair() -> (Conversation, Conversation) {
        let (a, b) = UnixStream::pair().unwrap();
        (Conversation::new(a, b""), Conversation::new(b, b""))
    }

    #[tokio::test]
    async fn messages_arrive_with_their_descriptors_in_order() {
        let (mut old, mut new) = pair();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let file = tempfile::tempfile().unwrap();
        old.send_with_fd(&FromOld::Lock, file.as_fd())
            .await
            .unwrap();
        let socket = FromOld::Socket {
            app: "api".into(),
            socket: SavedSocket {
                address: ListenAddress::Tcp {
                    host: None,
                    port: 0,
                },
                ephemeral_index: Some(0),
                inode: 1,
            },
        };
        old.send_with_fd(&socket, listener.as_fd()).await.unwrap();
        old.send(&FromOld::Ready { own_port: vec![] })
            .await
            .unwrap();
        drop(old);

        let lock: FromOld = new.recv().await.unwrap().unwrap();
        assert_eq!(lock, FromOld::Lock);
        let lock_fd = new.take_fd().unwrap();
        assert_eq!(
            nix::sys::stat::fstat(lock_fd.as_fd()).unwrap().st_ino,
            nix::sys::stat::fstat(file.as_fd()).unwrap().st_ino
        );
        assert_eq!(new.recv::<FromOld>().await.unwrap().unwrap(), socket);
        let received = std::net::TcpListener::from(new.take_fd().unwrap());
        assert_eq!(received.local_addr().unwrap().port(), port);
        assert_eq!(
            new.recv::<FromOld>().await.unwrap().unwrap(),
            FromOld::Ready { own_port: vec![] }
        );
        assert!(new.take_fd().is_none());
        assert!(new.recv::<FromOld>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn garbage_is_an_error_and_a_last_line_without_newline_counts() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut theirs = a;
        let mut ours = Conversation::new(b, b"{\"handover\":\"stop_yours\"}\n");
        theirs
            .write_all(b"not json\n{\"handover\":\"stop_app\",\"app\":\"x\"}")
            .await
            .unwrap();
        drop(theirs);
        assert_eq!(
            ours.recv::<FromSuccessor>().await.unwrap(),
            Some(FromSuccessor::StopYours)
        );
        assert!(ours.recv::<FromSuccessor>().await.is_err());
        assert_eq!(
            ours.recv::<FromSuccessor>().await.unwrap(),
            Some(FromSuccessor::StopApp { app: "x".into() })
        );
        assert!(ours.recv::<FromSuccessor>().await.unwrap().is_none());
    }

    #[test]
    fn the_wire_format_names_each_message() {
        assert_eq!(
            encode(&FromSuccessor::Launched {
                app: "api".into(),
                pid: 7
            }),
            b"{\"handover\":\"launched\",\"app\":\"api\",\"pid\":7}\n"
        );
        assert_eq!(encode(&FromOld::Stopping), b"{\"handover\":\"stopping\"}\n");
    }

    #[test]
    fn a_seat_left_keeps_the_lock_for_the_other_holder() {
        use nix::fcntl::FlockArg;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rsup.pid");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let lock = Flock::lock(open(), FlockArg::LockExclusiveNonblock).unwrap();
        // What the successor receives: the same open file, already locked.
        let handed = lock.try_clone().unwrap();
        let successors = Flock::lock(handed, FlockArg::LockExclusiveNonblock).unwrap();
        let control = tempfile::tempfile().unwrap().into();
        Seat { lock, control }.leave();
        // A third party still cannot take it...
        assert!(Flock::lock(open(), FlockArg::LockExclusiveNonblock).is_err());
        // ...until the successor's descriptor closes too.
        write_pid(&successors).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(successors);
        assert!(Flock::lock(open(), FlockArg::LockExclusiveNonblock).is_ok());
    }
}
