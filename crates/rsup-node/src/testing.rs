//! A Unix datagram receiver for the package's own tests, which stand in for
//! systemd: Node cannot bind an AF_UNIX datagram socket. Exported with a
//! leading `__` because it is not part of the package's API.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[napi(js_name = "__TestDatagramReceiver")]
pub struct TestDatagramReceiver {
    socket: UnixDatagram,
}

#[napi]
impl TestDatagramReceiver {
    /// Binds `name`: a path, or an abstract name when it starts with `@`.
    #[napi(constructor)]
    pub fn new(name: String) -> Result<Self> {
        bind(&name)
            .map(|socket| TestDatagramReceiver { socket })
            .map_err(|e| Error::from_reason(format!("bind {name}: {e}")))
    }

    /// The next datagram as text, or null if none arrives within
    /// `timeout_ms` (0: only what is already queued).
    #[napi]
    pub fn recv(&self, timeout_ms: u32) -> Result<Option<String>> {
        let result = if timeout_ms == 0 {
            self.socket.set_nonblocking(true)
        } else {
            self.socket.set_nonblocking(false).and_then(|()| {
                self.socket
                    .set_read_timeout(Some(Duration::from_millis(timeout_ms.into())))
            })
        };
        result.map_err(|e| Error::from_reason(e.to_string()))?;
        let mut buf = vec![0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_reason(e.to_string())),
        }
    }
}

fn bind(name: &str) -> io::Result<UnixDatagram> {
    match name.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
            UnixDatagram::bind_addr(&addr)
        }
        _ => UnixDatagram::bind(name),
    }
}
