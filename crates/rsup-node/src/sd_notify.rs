//! systemd's readiness protocol: one datagram to the socket named by
//! `NOTIFY_SOCKET`, a path or, with a leading `@`, an abstract name.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Sends `state` (such as `READY=1`) to systemd. Returns false when
/// `NOTIFY_SOCKET` is not set, that is when systemd does not listen.
#[napi]
pub fn sd_notify(state: String) -> Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    send(&target, state.as_bytes())
        .map(|()| true)
        .map_err(|e| Error::from_reason(format!("sd_notify to {target:?}: {e}")))
}

fn send(target: &OsStr, message: &[u8]) -> io::Result<()> {
    // std creates it close-on-exec.
    let socket = UnixDatagram::unbound()?;
    match target.as_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(&socket, name, message),
        None => socket.send_to(message, Path::new(target)).map(drop),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr).map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}
