//! The reader of the worker channel: splits what the supervisor sends into
//! lines, pairs each successful `listening` line with the next received
//! descriptor, hands replies to the `listen` call waiting for them and
//! passes `shutdown` and `accept` on.

use crate::scm_rights::recv_with_fds;
use rsup_proto::framing::{decode, LineBuffer};
use rsup_proto::worker::{ListenError, ShutdownReason, SupervisorMessage};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The supervisor's answer to one listen request.
#[derive(Debug)]
pub enum Reply {
    Socket(OwnedFd),
    Failed(ListenError),
}

#[derive(Debug, PartialEq, Eq)]
pub enum WaitError {
    TimedOut,
    /// The channel closed (or failed) before the answer came.
    Closed,
}

/// Answers by request id, for callers blocked in [`Replies::wait`].
#[derive(Default)]
pub struct Replies {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    replies: HashMap<u64, Reply>,
    /// Requests whose caller gave up; a late socket is closed, not kept.
    abandoned: HashSet<u64>,
    closed: bool,
}

impl Replies {
    pub fn deliver(&self, request: u64, reply: Reply) {
        let mut state = self.state.lock().unwrap();
        if state.abandoned.remove(&request) {
            return; // dropping the reply closes its descriptor
        }
        state.replies.insert(request, reply);
        self.changed.notify_all();
    }

    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.changed.notify_all();
    }

    pub fn wait(&self, request: u64, timeout: Duration) -> Result<Reply, WaitError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(reply) = state.replies.remove(&request) {
                return Ok(reply);
            }
            if state.closed {
                return Err(WaitError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                state.abandoned.insert(request);
                return Err(WaitError::TimedOut);
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// What the supervisor says that no call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Shut down; SIGKILL comes this many milliseconds later. The reason
    /// is absent from supervisors older than it.
    Shutdown(u64, Option<ShutdownReason>),
    /// Start accepting connections, ready or not.
    Accept,
    /// The channel closed: the supervisor is gone (killed, crashed). Sent
    /// once, last.
    Closed,
}

/// Reads `socket` until it closes, then marks `replies` closed.
/// `on_notice` gets each shutdown and accept message, then `Closed`.
pub fn read_messages(socket: RawFd, replies: &Replies, on_notice: impl Fn(Notice)) {
    let mut lines = LineBuffer::new();
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match recv_with_fds(socket, &mut buf, &mut received) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // A descriptor arrives with its line's first byte, so it is queued
        // before that line can be complete.
        fds.extend(received.drain(..));
        for line in lines.push(&buf[..n]) {
            // Lines too long and messages this version does not know are
            // skipped, so a newer supervisor can add some.
            match line.and_then(|line| decode::<SupervisorMessage>(&line)) {
                Ok(SupervisorMessage::Shutdown {
                    deadline_ms,
                    reason,
                }) => on_notice(Notice::Shutdown(deadline_ms, reason)),
                Ok(SupervisorMessage::Accept) => on_notice(Notice::Accept),
                Ok(SupervisorMessage::Listening { request, error }) => {
                    let reply = match error {
                        Some(error) => Reply::Failed(error),
                        None => match fds.pop_front() {
                            Some(fd) => Reply::Socket(fd),
                            None => Reply::Failed(missing_descriptor()),
                        },
                    };
                    replies.deliver(request, reply);
                }
                Err(_) => {}
            }
        }
    }
    replies.close();
    on_notice(Notice::Closed);
}

fn missing_descriptor() -> ListenError {
    ListenError {
        code: "EPROTO".into(),
        errno: libc::EPROTO,
        message: "listen EPROTO: the supervisor's reply carried no socket".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use proptest::prelude::*;
    use rsup_proto::framing::{encode, MAX_LINE};
    use std::io::{IoSlice, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn inode(fd: RawFd) -> u64 {
        // SAFETY: fstat only writes into the buffer given.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            assert_eq!(libc::fstat(fd, &mut st), 0);
            st.st_ino
        }
    }

    /// The shutdown deadlines the reader passes on when the supervisor
    /// writes `chunks` and closes.
    fn shutdowns_read_from(chunks: &[Vec<u8>]) -> Vec<u64> {
        let (supervisor, worker) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let (replies, seen) = (Replies::default(), Mutex::new(Vec::new()));
            read_messages(worker.as_raw_fd(), &replies, |notice| {
                if let Notice::Shutdown(ms, _) = notice {
                    seen.lock().unwrap().push(ms)
                }
            });
            assert_eq!(
                replies.wait(1, Duration::ZERO).unwrap_err(),
                WaitError::Closed
            );
            seen.into_inner().unwrap()
        });
        for chunk in chunks {
            (&supervisor).write_all(chunk).unwrap();
        }
        drop(supervisor);
        reader.join().unwrap()
    }

    fn shutdown(deadline_ms: u64) -> Vec<u8> {
        encode(&SupervisorMessage::Shutdown {
            deadline_ms,
            reason: None,
        })
    }

    #[test]
    fn skips_a_line_longer_than_the_limit_and_reads_on() {
        let mut long = vec![b'x'; MAX_LINE + 1];
        long.push(b'\n');
        assert_eq!(
            shutdowns_read_from(&[shutdown(1), long, shutdown(2)]),
            [1, 2]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Garbage lines between messages, cut anywhere, neither stop the
        /// reader nor turn into messages.
        #[test]
        fn reads_the_messages_among_garbage_however_cut(
            lines in prop::collection::vec(
                prop_oneof![
                    any::<u64>().prop_map(Ok),
                    prop::collection::vec(any::<u8>(), 0..80)
                        .prop_map(|mut l| { l.retain(|b| *b != b'\n'); Err(l) })
                        .prop_filter("not a message", |l| {
                            decode::<SupervisorMessage>(l.as_ref().unwrap_err()).is_err()
                        }),
                ],
                0..20,
            ),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut stream = Vec::new();
            for line in &lines {
                match line {
                    Ok(deadline) => stream.extend(shutdown(*deadline)),
                    Err(garbage) => stream.extend(garbage.iter().chain(b"\n")),
                }
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.extend([0, stream.len()]);
            cuts.sort_unstable();
            let chunks: Vec<Vec<u8>> = cuts.windows(2).map(|w| stream[w[0]..w[1]].to_vec()).collect();
            let want: Vec<u64> = lines.iter().filter_map(|l| l.as_ref().ok().copied()).collect();
            prop_assert_eq!(shutdowns_read_from(&chunks), want);
        }
    }

    #[test]
    fn pairs_descriptors_with_successful_replies_and_passes_shutdown_accept_and_closed_on() {
        let (supervisor, worker) = UnixStream::pair().unwrap();
        let replies = Arc::new(Replies::default());
        let deadline = Arc::new(AtomicU64::new(0));
        let accepts = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let reader = {
            let (replies, deadline, accepts, closed) = (
                replies.clone(),
                deadline.clone(),
                accepts.clone(),
                closed.clone(),
            );
            std::thread::spawn(move || {
                read_messages(worker.as_raw_fd(), &replies, |notice| match notice {
                    Notice::Shutdown(ms, reason) => {
                        assert_eq!(reason, Some(ShutdownReason::Stop));
                        deadline.store(ms, Ordering::SeqCst)
                    }
                    Notice::Accept => {
                        accepts.fetch_add(1, Ordering::SeqCst);
                    }
                    Notice::Closed => {
                        // Last: every reply was delivered before.
                        assert_eq!(deadline.load(Ordering::SeqCst), 1600);
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                });
                drop(worker);
            })
        };

        let first = std::fs::File::open("/dev/null").unwrap();
        let second = tempfile_like();
        // An error reply between two sockets takes no descriptor.
        for (line, fd) in [
            (&b"{\"type\":\"listening\",\"request\":1}\n"[..], Some(first.as_raw_fd())),
            (
                &b"{\"type\":\"listening\",\"request\":2,\"error\":{\"code\":\"EADDRINUSE\",\"errno\":98,\"message\":\"m\"}}\n"[..],
                None,
            ),
            (&b"{\"type\":\"listening\",\"request\":3}\n"[..], Some(second.as_raw_fd())),
        ] {
            match fd {
                Some(fd) => {
                    sendmsg::<()>(
                        supervisor.as_raw_fd(),
                        &[IoSlice::new(&line[..1])],
                        &[ControlMessage::ScmRights(&[fd])],
                        MsgFlags::empty(),
                        None,
                    )
                    .unwrap();
                    (&supervisor).write_all(&line[1..]).unwrap();
                }
                None => (&supervisor).write_all(line).unwrap(),
            }
        }
        // A message this version does not know is skipped.
        (&supervisor)
            .write_all(b"{\"type\":\"accept\"}\n{\"type\":\"someday\"}\n")
            .unwrap();
        (&supervisor)
            .write_all(b"{\"type\":\"shutdown\",\"deadline_ms\":1600,\"reason\":\"stop\"}\n")
            .unwrap();

        let wait = |r| replies.wait(r, Duration::from_secs(5)).unwrap();
        match wait(3) {
            Reply::Socket(fd) => assert_eq!(inode(fd.as_raw_fd()), inode(second.as_raw_fd())),
            other => panic!("{other:?}"),
        }
        match wait(1) {
            Reply::Socket(fd) => assert_eq!(inode(fd.as_raw_fd()), inode(first.as_raw_fd())),
            other => panic!("{other:?}"),
        }
        match wait(2) {
            Reply::Failed(e) => assert_eq!((e.code.as_str(), e.errno), ("EADDRINUSE", 98)),
            other => panic!("{other:?}"),
        }
        drop(supervisor);
        reader.join().unwrap();
        assert_eq!(deadline.load(Ordering::SeqCst), 1600);
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert_eq!(
            replies.wait(4, Duration::from_secs(5)).unwrap_err(),
            WaitError::Closed
        );
    }

    #[test]
    fn a_wait_times_out_and_a_late_reply_is_discarded() {
        let replies = Replies::default();
        assert_eq!(
            replies.wait(9, Duration::from_millis(10)).unwrap_err(),
            WaitError::TimedOut
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        replies.deliver(9, Reply::Socket(file.into()));
        assert!(replies.state.lock().unwrap().replies.is_empty());
    }

    /// A second open file with an inode distinct from /dev/null's.
    fn tempfile_like() -> std::fs::File {
        std::fs::File::open(std::env::current_exe().unwrap()).unwrap()
    }
}
