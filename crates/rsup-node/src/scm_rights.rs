//! Reading a Unix stream socket together with the descriptors sent with its
//! bytes as SCM_RIGHTS ancillary data.

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Descriptors accepted per read. The supervisor sends one per line, and
/// Linux never merges the ancillary data of two sends into one read.
const MAX_FDS: usize = 16;

/// Reads into `buf` and appends the descriptors that came with those bytes
/// to `fds`, in arrival order, close-on-exec. Returns the number of bytes
/// read; 0 means the peer closed the socket.
pub fn recv_with_fds(socket: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(socket, &mut iov, Some(&mut space), cloexec_flag()) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for raw in received {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us; nothing else refers to it.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                // Where recvmsg cannot do it atomically, the app's children
                // could still inherit it from a fork in between; as good
                // as those platforms allow.
                #[cfg(not(any(
                    target_os = "linux",
                    target_os = "android",
                    target_os = "freebsd"
                )))]
                crate::worker_channel::set_cloexec(raw)?;
                fds.push(fd);
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        // More descriptors than room: the kernel closed the rest. The
        // supervisor never does this, so it is not worth recovering from.
        return Err(io::Error::other(
            "descriptors truncated on the worker channel",
        ));
    }
    Ok(msg.bytes)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn cloexec_flag() -> MsgFlags {
    MsgFlags::MSG_CMSG_CLOEXEC
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn cloexec_flag() -> MsgFlags {
    MsgFlags::empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn send_with_fd(to: &UnixStream, bytes: &[u8], fd: RawFd) {
        let fds = [fd];
        sendmsg::<()>(
            to.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }

    #[test]
    fn receives_bytes_and_descriptors_close_on_exec() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send_with_fd(&a, b"hello\n", file.as_raw_fd());
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_raw_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        assert_eq!(fds.len(), 1);
        assert_ne!(fds[0].as_raw_fd(), file.as_raw_fd());
        // SAFETY: plain fcntl on a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn reports_a_closed_peer_as_zero_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let mut fds = Vec::new();
        assert_eq!(
            recv_with_fds(b.as_raw_fd(), &mut [0u8; 8], &mut fds).unwrap(),
            0
        );
        assert!(fds.is_empty());
    }
}
