//! What the daemon and its keeper say to each other: one message per
//! datagram of a `SOCK_SEQPACKET` pair (so a message is never cut, even by
//! a crash or an exec), as JSON, with the descriptors it hands over
//! attached (SCM_RIGHTS).

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The largest message either side sends or reads (within the socket's
/// default send buffer, which bounds a datagram).
pub const MAX_MESSAGE: usize = 160 * 1024;
/// The most descriptors one message carries.
pub const MAX_FDS: usize = 64;

/// From the daemon to its keeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToKeeper {
    /// The daemon serves: the next daemon, if one is needed, runs `exe`.
    Hello { exe: PathBuf },
    /// Keep the attached descriptors under `key`, with `meta` (replacing
    /// what was kept under it). `pid` names the process they belong to,
    /// whose exit the keeper then reports; the first descriptor is then
    /// its pidfd.
    Keep {
        key: String,
        #[serde(default)]
        pid: Option<u32>,
        meta: serde_json::Value,
    },
    /// Fields of `meta` for `key`, set over those it has; its
    /// descriptors stay.
    Note {
        key: String,
        meta: serde_json::Value,
    },
    /// Close what `key` kept.
    Forget { key: String },
    /// The daemon stops every app and ends, as asked (`rsup kill`, a stop
    /// signal): however it ends now, no daemon is to follow it.
    Ending,
}

/// From the keeper to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FromKeeper {
    /// A process of the daemon's, re-parented to the keeper after a
    /// daemon ended, has exited; `status` is its raw wait status.
    Exited { pid: u32, status: i32 },
}

/// A connected pair, both ends closed on exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// Sends one message, without waiting: `WouldBlock` when the peer's queue
/// is full.
pub fn send<T: Serialize>(fd: BorrowedFd, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    send_bytes(fd, &bytes, fds)
}

pub fn send_bytes(fd: BorrowedFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if bytes.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(io::Error::other("message too large for the keeper"));
    }
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<UnixAddr>(
        fd.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// One message received.
pub enum Received<T> {
    Message(T, Vec<OwnedFd>),
    /// The peer closed its end.
    Closed,
    /// Not one to act on (cut short, or not understood): its descriptors
    /// are closed.
    Bad(String),
}

/// Reads one message without waiting (`WouldBlock` when there is none).
pub fn recv<T: for<'de> Deserialize<'de>>(fd: BorrowedFd) -> io::Result<Received<T>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = recvmsg::<UnixAddr>(fd.as_raw_fd(), &mut iov, Some(&mut space), flags)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just gave us these descriptors.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let len = msg.bytes;
    if len == 0 && fds.is_empty() && !truncated {
        return Ok(Received::Closed);
    }
    if truncated {
        return Ok(Received::Bad("a message was cut short".into()));
    }
    Ok(match serde_json::from_slice(&buf[..len]) {
        Ok(message) => Received::Message(message, fds),
        Err(e) => Received::Bad(format!("a message not understood: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_carry_their_descriptors_and_bad_ones_are_refused() {
        let (a, b) = pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let keep = ToKeeper::Keep {
            key: "process/0/12".into(),
            pid: Some(12),
            meta: serde_json::json!({"said_ready": true}),
        };
        send(a.as_fd(), &keep, &[file.as_raw_fd(), file.as_raw_fd()]).unwrap();
        match recv::<ToKeeper>(b.as_fd()).unwrap() {
            Received::Message(got, fds) => {
                assert_eq!(got, keep);
                assert_eq!(fds.len(), 2);
            }
            _ => panic!("not received"),
        }
        // Nothing waiting: not a block.
        assert_eq!(
            recv::<ToKeeper>(b.as_fd()).err().unwrap().kind(),
            io::ErrorKind::WouldBlock
        );
        send_bytes(a.as_fd(), b"{not json", &[file.as_raw_fd()]).unwrap();
        assert!(matches!(
            recv::<ToKeeper>(b.as_fd()).unwrap(),
            Received::Bad(_)
        ));
        assert!(send_bytes(a.as_fd(), &vec![b' '; MAX_MESSAGE + 1], &[]).is_err());
        drop(a);
        assert!(matches!(
            recv::<ToKeeper>(b.as_fd()).unwrap(),
            Received::Closed
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever bytes come, either side gets a message or a refusal,
        /// never a panic.
        #[test]
        fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..2048)) {
            let (a, b) = pair().unwrap();
            send_bytes(a.as_fd(), &bytes, &[]).unwrap();
            let _ = recv::<ToKeeper>(b.as_fd()).unwrap();
            send_bytes(b.as_fd(), &bytes, &[]).unwrap();
            let _ = recv::<FromKeeper>(a.as_fd()).unwrap();
        }
    }
}
