//! The listening sockets the daemon owns. Each address is bound once, the
//! first time an instance asks, and every instance gets a duplicate; a
//! socket closes only when no app that uses it has anything running.
//! Because the daemon's copy stays open, the kernel's accept queue survives
//! every restart and reload: a connection waiting in it is accepted by
//! whichever instance accepts next, never refused.
//!
//! Apps share an address as PM2's cluster mode lets them (two apps running
//! one script under two names, both on port 8000): the daemon-wide
//! [`SocketTable`] gives a second app the socket the first bound, and the
//! socket closes with its last user.

use super::keeper_link::KeeperLink;
use super::own_listeners::{socket_inode, socket_inodes};
use rsup_proto::worker::{ListenAddress, ListenError};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// Node's default backlog.
const BACKLOG: i32 = 511;

/// The daemon's sockets of fixed addresses, whichever apps hold them. An
/// entry lives as long as some app holds its socket (the apps hold the
/// strong references), so the table never keeps a socket open by itself.
#[derive(Default)]
pub struct SocketTable(Mutex<HashMap<ListenAddress, Weak<OwnedFd>>>);

impl SocketTable {
    /// The socket for `address`: the one another app holds, else `fd`.
    fn file(&self, address: &ListenAddress, fd: OwnedFd) -> Arc<OwnedFd> {
        let mut table = self.0.lock().unwrap();
        if let Some(held) = table.get(address).and_then(Weak::upgrade) {
            return held;
        }
        table.retain(|_, weak| weak.strong_count() > 0);
        let fd = Arc::new(fd);
        table.insert(address.clone(), Arc::downgrade(&fd));
        fd
    }

    /// The socket for `address`: the one another app holds, else one
    /// bound now (under the lock, so that two apps never bind one address
    /// twice, nor one binds a Unix path while another removes it).
    fn get_or_bind(
        &self,
        address: &ListenAddress,
        host_ip: Option<IpAddr>,
    ) -> Result<Arc<OwnedFd>, ListenError> {
        let mut table = self.0.lock().unwrap();
        if let Some(held) = table.get(address).and_then(Weak::upgrade) {
            return Ok(held);
        }
        table.retain(|_, weak| weak.strong_count() > 0);
        let fd = Arc::new(bind(address, host_ip)?);
        table.insert(address.clone(), Arc::downgrade(&fd));
        Ok(fd)
    }

    /// Drops an app's hold on the socket of `address`. The last hold
    /// closes it, and removes its Unix socket file unless `leave_path`.
    fn let_go(&self, address: &ListenAddress, fd: Arc<OwnedFd>) {
        let _table = self.0.lock().unwrap();
        let closed = Arc::into_inner(fd).is_some();
        if let (ListenAddress::Unix { path }, true) = (address, closed) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One app's sockets. A request for port 0 means "a free port": the n-th
/// such request of each process gets the app's n-th ephemeral socket, so
/// instances share ports while one process can still open several; those
/// are never shared with another app.
#[derive(Default)]
pub struct AppSockets {
    bound: HashMap<ListenAddress, Arc<OwnedFd>>,
    ephemeral: HashMap<(Option<String>, usize), OwnedFd>,
    /// Where sockets of fixed addresses are shared with other apps.
    table: Arc<SocketTable>,
    /// Told when a socket is bound, so that the state file lists it.
    changed: Option<Arc<Notify>>,
    /// The daemon's keeper, and the key it keeps the app's sockets under,
    /// so that they outlive a crash of the daemon.
    keeper: Option<(Arc<KeeperLink>, String)>,
}

/// A socket as the state file keeps it: enough for a later daemon to find
/// it in a process that still holds it, and to file it where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSocket {
    pub address: ListenAddress,
    /// For a port-0 socket: which of a process's port-0 requests it serves.
    pub ephemeral_index: Option<usize>,
    /// The socket's inode, as `/proc/<pid>/fd` shows it (`socket:[inode]`).
    pub inode: u64,
}

impl AppSockets {
    pub fn new(
        table: Arc<SocketTable>,
        changed: Arc<Notify>,
        keeper: Option<(Arc<KeeperLink>, String)>,
    ) -> AppSockets {
        AppSockets {
            table,
            changed: Some(changed),
            keeper,
            ..AppSockets::default()
        }
    }

    /// Each socket with its descriptor, which stays open as long as the
    /// app holds the socket.
    pub fn held_fds(&self) -> Vec<(SavedSocket, RawFd)> {
        self.entries()
            .map(|(saved, fd)| (saved, fd.as_raw_fd()))
            .collect()
    }

    /// Every socket, for the state file.
    pub fn saved(&self) -> Vec<SavedSocket> {
        self.entries().map(|(saved, _)| saved).collect()
    }

    fn entries(&self) -> impl Iterator<Item = (SavedSocket, &OwnedFd)> + '_ {
        let bound = self
            .bound
            .iter()
            .map(|(address, fd)| (address.clone(), None, &**fd));
        let ephemeral = self.ephemeral.iter().map(|((host, index), fd)| {
            let address = ListenAddress::Tcp {
                host: host.clone(),
                port: 0,
            };
            (address, Some(*index), fd)
        });
        bound
            .chain(ephemeral)
            .filter_map(|(address, ephemeral_index, fd)| {
                let inode = socket_inode(fd.as_fd()).ok()?;
                let saved = SavedSocket {
                    address,
                    ephemeral_index,
                    inode,
                };
                Some((saved, fd))
            })
    }

    /// Takes back a socket a previous daemon had bound, where it was (a
    /// socket several apps shared comes once per app, and is filed once).
    pub fn adopt(&mut self, saved: &SavedSocket, fd: OwnedFd) {
        match (&saved.address, saved.ephemeral_index) {
            (ListenAddress::Tcp { host, port: 0 }, Some(index)) => {
                self.ephemeral.insert((host.clone(), index), fd);
            }
            (address, _) => {
                let fd = self.table.file(address, fd);
                self.bound.insert(address.clone(), fd);
            }
        }
    }

    /// A duplicate of the app's socket for `address`, binding it first if
    /// needed. `ephemeral_index` counts this process's earlier port-0
    /// requests.
    pub fn get(
        &mut self,
        address: &ListenAddress,
        host_ip: Option<IpAddr>,
        ephemeral_index: usize,
    ) -> Result<OwnedFd, ListenError> {
        let fd = match address {
            ListenAddress::Tcp { host, port: 0 } => {
                let key = (host.clone(), ephemeral_index);
                if !self.ephemeral.contains_key(&key) {
                    let fd = bind(address, host_ip)?;
                    self.ephemeral.insert(key.clone(), fd);
                    self.notice();
                }
                &self.ephemeral[&key]
            }
            _ => {
                if !self.bound.contains_key(address) {
                    let fd = self.table.get_or_bind(address, host_ip)?;
                    self.bound.insert(address.clone(), fd);
                    self.notice();
                }
                &*self.bound[address]
            }
        };
        fd.try_clone().map_err(|e| listen_error(&e, address))
    }

    /// The inodes of every socket handed out, to tell them from sockets
    /// an instance opened itself.
    pub fn inodes(&self) -> HashSet<u64> {
        socket_inodes(
            self.bound
                .values()
                .map(|fd| &**fd)
                .chain(self.ephemeral.values())
                .map(|fd| fd.as_fd()),
        )
    }

    fn notice(&self) {
        if let Some(changed) = &self.changed {
            changed.notify_one();
        }
        if let Some((keeper, key)) = &self.keeper {
            let (saved, fds): (Vec<SavedSocket>, Vec<BorrowedFd>) = self
                .entries()
                .map(|(saved, fd)| (saved, fd.as_fd()))
                .unzip();
            let meta = serde_json::to_value(saved).unwrap_or_default();
            keeper.keep(key.clone(), None, meta, &fds);
        }
    }

    /// Lets go of every socket (the app is gone or has nothing running):
    /// those no other app holds close, so that connections are refused
    /// rather than left waiting, and their Unix socket files go. Whether it
    /// held any.
    pub fn release(&mut self) -> bool {
        let held = !self.bound.is_empty() || !self.ephemeral.is_empty();
        if let (Some((keeper, key)), true) = (&self.keeper, held) {
            keeper.forget(key.clone());
        }
        for (address, fd) in self.bound.drain() {
            self.table.let_go(&address, fd);
        }
        self.ephemeral.clear();
        held
    }
}

/// The address a TCP host name stands for, looked up without blocking the
/// daemon (a slow resolver must not stall every other app). `None` for
/// "every address" and for Unix sockets.
pub async fn resolve_host(address: &ListenAddress) -> Result<Option<IpAddr>, ListenError> {
    let ListenAddress::Tcp {
        host: Some(host),
        port,
    } = address
    else {
        return Ok(None);
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let found = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next());
    match found {
        Some(addr) => Ok(Some(addr.ip())),
        None => Err(ListenError {
            code: "ENOTFOUND".into(),
            errno: libc::EINVAL,
            message: format!("getaddrinfo ENOTFOUND {host}"),
        }),
    }
}

fn bind(address: &ListenAddress, host_ip: Option<IpAddr>) -> Result<OwnedFd, ListenError> {
    let result = match address {
        ListenAddress::Tcp { port, .. } => bind_tcp(host_ip, *port),
        ListenAddress::Unix { path } => bind_unix(Path::new(path)),
    };
    result.map_err(|e| listen_error(&e, address))
}

fn bind_tcp(host: Option<IpAddr>, port: u16) -> std::io::Result<OwnedFd> {
    match host {
        // Like Node: every address, IPv6 with IPv4 mapped, else IPv4 only.
        None => match bind_tcp_addr(SocketAddr::from(([0u16; 8], port)), true) {
            // Only a machine without IPv6 falls back; a port in use is an
            // error on IPv4 too.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                ) =>
            {
                bind_tcp_addr(SocketAddr::from(([0u8; 4], port)), false)
            }
            other => other,
        },
        Some(ip) => bind_tcp_addr(SocketAddr::new(ip, port), false),
    }
}

fn bind_tcp_addr(addr: SocketAddr, dual_stack: bool) -> std::io::Result<OwnedFd> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn bind_unix(path: &Path) -> std::io::Result<OwnedFd> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Describes a bind failure the way Node would, so the app's `error`
/// handler sees the code it expects.
fn listen_error(err: &std::io::Error, address: &ListenAddress) -> ListenError {
    let errno = err.raw_os_error().unwrap_or(libc::EINVAL);
    let code = format!("{:?}", nix::errno::Errno::from_raw(errno));
    let place = match address {
        ListenAddress::Tcp { host, port } => {
            format!("{}:{port}", host.as_deref().unwrap_or("::"))
        }
        ListenAddress::Unix { path } => path.clone(),
    };
    let reason = std::io::Error::from_raw_os_error(errno).to_string();
    let reason = reason
        .split(" (os error")
        .next()
        .unwrap_or(&reason)
        .to_lowercase();
    ListenError {
        message: format!("listen {code}: {reason} {place}"),
        code,
        errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn ip(address: &ListenAddress) -> Option<IpAddr> {
        match address {
            ListenAddress::Tcp { host, .. } => host.as_deref().map(|h| h.parse().unwrap()),
            ListenAddress::Unix { .. } => None,
        }
    }

    fn port_of(fd: &OwnedFd) -> u16 {
        let sock = socket2::SockRef::from(fd);
        sock.local_addr().unwrap().as_socket().unwrap().port()
    }

    #[test]
    fn instances_of_an_app_share_one_socket_and_port_zero_is_shared() {
        let mut api = AppSockets::default();
        let any = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: 0,
        };
        let a = api.get(&any, ip(&any), 0).unwrap();
        let b = api.get(&any, ip(&any), 0).unwrap();
        assert_ne!(a.as_raw_fd(), b.as_raw_fd());
        assert_eq!(port_of(&a), port_of(&b));
        // A second port-0 server in one process gets its own port.
        let c = api.get(&any, ip(&any), 1).unwrap();
        assert_ne!(port_of(&a), port_of(&c));
        // Another app never shares.
        let d = AppSockets::default().get(&any, ip(&any), 0).unwrap();
        assert_ne!(port_of(&a), port_of(&d));
    }

    #[test]
    fn apps_share_a_fixed_address_until_the_last_lets_go() {
        let table = Arc::new(SocketTable::default());
        let app = || AppSockets::new(table.clone(), Arc::new(Notify::new()), None);
        let (mut http, mut http2) = (app(), app());
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let address = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port,
        };
        let a = http.get(&address, ip(&address), 0).unwrap();
        let b = http2.get(&address, ip(&address), 0).unwrap();
        assert_eq!(http.inodes(), http2.inodes(), "one socket for both apps");
        drop((a, b));
        // The first app stops: the second still accepts on the socket.
        http.release();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        // ...and the first, started again, shares it once more.
        http.get(&address, ip(&address), 0).unwrap();
        assert_eq!(http.inodes(), http2.inodes());
        http.release();
        http2.release();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        // A Unix socket file goes with the last app that held it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let unix = ListenAddress::Unix {
            path: path.to_str().unwrap().into(),
        };
        http.get(&unix, None, 0).unwrap();
        http2.get(&unix, None, 0).unwrap();
        http.release();
        assert!(path.exists());
        http2.release();
        assert!(!path.exists());
    }

    #[test]
    fn a_port_in_use_is_reported_as_node_would() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = AppSockets::default()
            .get(
                &ListenAddress::Tcp {
                    host: Some("127.0.0.1".into()),
                    port,
                },
                Some([127, 0, 0, 1].into()),
                0,
            )
            .unwrap_err();
        assert_eq!(err.code, "EADDRINUSE");
        assert_eq!(err.errno, libc::EADDRINUSE);
        assert!(err
            .message
            .starts_with("listen EADDRINUSE: address already in use 127.0.0.1:"));
    }

    #[tokio::test]
    async fn host_names_are_resolved_and_unknown_ones_reported() {
        let localhost = ListenAddress::Tcp {
            host: Some("localhost".into()),
            port: 0,
        };
        let ip = resolve_host(&localhost).await.unwrap().unwrap();
        assert!(ip.is_loopback());
        let nowhere = ListenAddress::Tcp {
            host: Some("no-such-host.invalid".into()),
            port: 0,
        };
        assert_eq!(resolve_host(&nowhere).await.unwrap_err().code, "ENOTFOUND");
        let every = ListenAddress::Tcp {
            host: None,
            port: 0,
        };
        assert_eq!(resolve_host(&every).await.unwrap(), None);
    }

    #[test]
    fn unix_sockets_are_bound_once_and_removed_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let address = ListenAddress::Unix {
            path: path.to_str().unwrap().into(),
        };
        let mut api = AppSockets::default();
        api.get(&address, ip(&address), 0).unwrap();
        api.get(&address, ip(&address), 0).unwrap();
        assert!(path.exists());
        api.release();
        assert!(!path.exists());
    }

    #[test]
    fn the_sockets_held_are_described_whole_for_the_next_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let unix = ListenAddress::Unix {
            path: path.to_str().unwrap().into(),
        };
        let any = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: 0,
        };
        let mut api = AppSockets::default();
        api.get(&unix, ip(&unix), 0).unwrap();
        let tcp = api.get(&any, ip(&any), 0).unwrap();
        // What the next image of the daemon gets: the same descriptors.
        let handed: Vec<(SavedSocket, OwnedFd)> = api
            .held_fds()
            .into_iter()
            .map(|(saved, fd)| {
                // SAFETY: `api` holds the descriptor open meanwhile.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                (saved, fd.try_clone_to_owned().unwrap())
            })
            .collect();
        assert_eq!(handed.len(), 2);
        let (saved, fd) = handed
            .iter()
            .find(|(s, _)| s.ephemeral_index == Some(0))
            .unwrap();
        assert_eq!(saved.address, any);
        assert_eq!(port_of(fd), port_of(&tcp));
        // Filed where they were.
        let mut theirs = AppSockets::default();
        for (saved, fd) in handed {
            theirs.adopt(&saved, fd);
        }
        assert_eq!(theirs.inodes(), api.inodes());
        drop(api);
        assert!(path.exists());
        theirs.release();
        assert!(!path.exists());
    }
}
