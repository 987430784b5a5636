//! Listening sockets an instance opened itself, rather than taking them from
//! the daemon.
//!
//! A reload runs the new process beside the old one, which works because
//! both share the daemon's socket. An app that binds its port itself (no
//! preload, no listen request) cannot do that: its new process fails with
//! EADDRINUSE while the old one holds the port. Before a reload the daemon
//! asks [`own_listeners`] whether the old process holds such a socket, and
//! restarts the instance instead if it does.
//!
//! Everything comes from `/proc`: the process's descriptors
//! (`/proc/<pid>/fd/* -> socket:[inode]`) matched against the listening
//! entries of `/proc/<pid>/net/{tcp,tcp6,unix}`, which show the socket
//! tables of that process's network namespace. A socket is identified by
//! its inode, which is also the `st_ino` of `fstat` on any descriptor of
//! it, so the sockets the daemon handed out are recognised by the inodes of
//! its own descriptors ([`socket_inode`]).
//!
//! Processes come and go during a scan; one that vanishes, or whose files
//! cannot be read, is skipped. Nothing here panics on odd `/proc` contents:
//! a line that does not parse is ignored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// `/proc/net/tcp*` state of a listening socket (`TCP_LISTEN`).
const TCP_LISTEN: u8 = 0x0A;
/// `/proc/net/unix` flag of a listening socket (`__SO_ACCEPTCON`).
const UNIX_ACCEPTCON: u32 = 0x0001_0000;

/// A listening socket a process holds that the daemon did not hand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnListener {
    /// A process holding it (the main process when it is one of them).
    pub pid: u32,
    /// The socket's inode, as in `socket:[inode]`.
    pub inode: u64,
    /// `0.0.0.0:8080`, `[::]:8080`, a Unix socket path, `@name` for an
    /// abstract Unix socket, or `unix socket` for an unnamed one.
    pub address: String,
}

impl fmt::Display for OwnListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {})", self.address, self.pid)
    }
}

/// The listening sockets (TCP over IPv4 and IPv6, Unix stream) held by
/// `pid` and, with `group`, by every process of that process group, leaving
/// out those whose inode is in `handed`. Each socket is reported once, even
/// when several processes share it (a forking server's workers), and the
/// list is sorted by address.
///
/// A process that no longer exists holds nothing: that is an empty list,
/// not an error. The only error is a `/proc` that cannot be listed when a
/// group is asked for.
pub fn own_listeners(
    pid: u32,
    group: Option<u32>,
    handed: &HashSet<u64>,
) -> io::Result<Vec<OwnListener>> {
    own_listeners_in(Path::new("/proc"), pid, group, handed)
}

/// The inode of the socket behind `fd`: what `/proc/<pid>/fd` shows as
/// `socket:[inode]` in every process holding a duplicate of it.
pub fn socket_inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let stat = nix::sys::stat::fstat(fd)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a socket descriptor",
        ));
    }
    Ok(stat.st_ino as u64)
}

/// The inodes of `fds`, skipping any that are not sockets; what
/// [`own_listeners`] takes as `handed`.
pub fn socket_inodes<'a>(fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> HashSet<u64> {
    fds.into_iter()
        .filter_map(|fd| socket_inode(fd).ok())
        .collect()
}

fn own_listeners_in(
    proc_root: &Path,
    pid: u32,
    group: Option<u32>,
    handed: &HashSet<u64>,
) -> io::Result<Vec<OwnListener>> {
    let mut pids = vec![pid];
    if let Some(group) = group {
        let mut members = group_members(proc_root, group)?;
        members.retain(|&p| p != pid);
        members.sort_unstable();
        pids.extend(members);
    }

    // Socket inodes not handed out, with the first process holding each,
    // gathered per network namespace: only that namespace's tables know
    // them.
    let mut by_netns: BTreeMap<String, (u32, HashMap<u64, u32>)> = BTreeMap::new();
    for &p in &pids {
        let inodes = socket_fds(&proc_root.join(p.to_string()));
        if inodes.is_empty() {
            continue;
        }
        // A namespace that cannot be named is read through this process
        // alone.
        let netns = std::fs::read_link(proc_root.join(format!("{p}/ns/net")))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("pid {p}"));
        let (_, held) = by_netns.entry(netns).or_insert_with(|| (p, HashMap::new()));
        for inode in inodes {
            if !handed.contains(&inode) {
                held.entry(inode).or_insert(p);
            }
        }
    }

    let mut found = Vec::new();
    for (reader, held) in by_netns.into_values() {
        if held.is_empty() {
            continue;
        }
        let net = proc_root.join(format!("{reader}/net"));
        for (inode, address) in listening(&net) {
            if let Some(&pid) = held.get(&inode) {
                found.push(OwnListener {
                    pid,
                    inode,
                    address,
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.address, a.inode).cmp(&(&b.address, b.inode)));
    found.dedup_by_key(|l| l.inode);
    Ok(found)
}

/// Pids whose process group is `group`.
fn group_members(proc_root: &Path, group: u32) -> io::Result<Vec<u32>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_pgrp(&stat) == Some(group) {
            members.push(pid);
        }
    }
    Ok(members)
}

/// The process group field of `/proc/<pid>/stat`. The command name before
/// it is in parentheses and may itself hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn stat_pgrp(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // state, ppid, pgrp
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Inodes of the sockets among a process's descriptors.
fn socket_fds(proc_dir: &Path) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(proc_dir.join("fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|entry| {
        let link = std::fs::read_link(entry.ok()?.path()).ok()?;
        socket_link_inode(&link)
    })
    .collect()
}

fn socket_link_inode(link: &Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every listening socket in the tables under `net` (a `/proc/<pid>/net`),
/// by inode. A table that cannot be read (no IPv6) adds nothing.
fn listening(net: &Path) -> Vec<(u64, String)> {
    let read = |name: &str| std::fs::read_to_string(net.join(name)).unwrap_or_default();
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        found.extend(read(table).lines().skip(1).filter_map(tcp_listener));
    }
    found.extend(read("unix").lines().skip(1).filter_map(unix_listener));
    found
}

/// A line of `/proc/net/tcp` or `tcp6`, if it is a listening socket:
/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout
/// inode …`.
fn tcp_listener(line: &str) -> Option<(u64, String)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    if state != TCP_LISTEN {
        return None;
    }
    let address = parse_tcp_address(fields.get(1)?)?;
    let inode = fields.get(9)?.parse().ok()?;
    Some((inode, address.to_string()))
}

/// `0100007F:1F90` or the 32-digit IPv6 form. The kernel prints the
/// address as native-endian 32-bit words of network-order bytes, and the
/// port in host order.
fn parse_tcp_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if !ip.is_ascii() {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for word in ip.as_bytes().chunks(8) {
        let word = std::str::from_utf8(word).ok()?;
        if word.len() != 8 {
            return None;
        }
        bytes.extend(u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
    }
    match bytes.len() {
        4 => {
            let ip: [u8; 4] = bytes.try_into().ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
        }
        16 => {
            let ip: [u8; 16] = bytes.try_into().ok()?;
            Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0).into())
        }
        _ => None,
    }
}

/// A line of `/proc/net/unix`, if it is a listening socket:
/// `Num RefCount Protocol Flags Type St Inode [Path]`. The path is the rest
/// of the line and may hold spaces.
fn unix_listener(line: &str) -> Option<(u64, String)> {
    let mut rest = line;
    let mut fields = [""; 7];
    for field in &mut fields {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let flags = u32::from_str_radix(fields[3], 16).ok()?;
    if flags & UNIX_ACCEPTCON == 0 {
        return None;
    }
    let inode = fields[6].parse().ok()?;
    let path = rest.strip_prefix(' ').unwrap_or(rest);
    let address = if path.is_empty() {
        "unix socket".to_string()
    } else {
        PathBuf::from(path).display().to_string()
    };
    Some((inode, address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    fn me() -> u32 {
        std::process::id()
    }

    fn none() -> HashSet<u64> {
        HashSet::new()
    }

    fn inode_of(fd: &impl AsFd) -> u64 {
        socket_inode(fd.as_fd()).unwrap()
    }

    fn has(found: &[OwnListener], inode: u64) -> bool {
        found.iter().any(|l| l.inode == inode)
    }

    #[test]
    fn a_tcp_listener_of_this_process_is_found_with_its_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inode = inode_of(&listener);
        let found = own_listeners(me(), None, &none()).unwrap();
        let mine = found.iter().find(|l| l.inode == inode).expect("found");
        assert_eq!(mine.pid, me());
        assert_eq!(mine.address, format!("127.0.0.1:{port}"));
    }

    #[test]
    fn an_ipv6_listener_is_found() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let port = listener.local_addr().unwrap().port();
        let found = own_listeners(me(), None, &none()).unwrap();
        let mine = found
            .iter()
            .find(|l| l.inode == inode_of(&listener))
            .expect("found");
        assert_eq!(mine.address, format!("[::1]:{port}"));
    }

    #[test]
    fn a_handed_listener_is_left_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        // A duplicate has the same inode, as the daemon's copy and the
        // instance's have.
        let dup = listener.try_clone().unwrap();
        let handed = socket_inodes([dup.as_fd()]);
        assert_eq!(handed, HashSet::from([inode_of(&listener)]));
        let found = own_listeners(me(), None, &handed).unwrap();
        assert!(!has(&found, inode_of(&listener)), "{found:?}");
        assert!(has(&found, inode_of(&other)), "{found:?}");
    }

    #[test]
    fn connected_sockets_are_not_listeners() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let found = own_listeners(me(), None, &none()).unwrap();
        assert!(has(&found, inode_of(&listener)));
        assert!(!has(&found, inode_of(&client)), "{found:?}");
        assert!(!has(&found, inode_of(&server_side)), "{found:?}");
    }

    #[test]
    fn a_unix_listener_is_found_and_its_connections_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a socket with spaces.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        // Bound but not listening is no listener either.
        let bound =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        bound
            .bind(&socket2::SockAddr::unix(dir.path().join("bound.sock")).unwrap())
            .unwrap();

        let found = own_listeners(me(), None, &none()).unwrap();
        let mine = found
            .iter()
            .find(|l| l.inode == inode_of(&listener))
            .expect("found");
        assert_eq!(mine.address, path.display().to_string());
        for other in [inode_of(&client), inode_of(&server_side), inode_of(&bound)] {
            assert!(!has(&found, other), "{found:?}");
        }
    }

    #[test]
    fn a_process_that_does_not_exist_holds_nothing() {
        // Above the largest pid Linux hands out (4194304).
        let found = own_listeners(4_194_305, Some(4_194_305), &none()).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn socket_inode_refuses_what_is_not_a_socket() {
        let file = tempfile::tempfile().unwrap();
        let err = socket_inode(file.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// Kills the child's whole group when the test ends, however it ends.
    struct Group(Child);

    impl Drop for Group {
        fn drop(&mut self) {
            let pgid = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }

    /// A shell leading its own process group, whose child python binds a
    /// port and then prints it, as a forking app's worker would.
    fn spawn_group_binding_a_port() -> (Group, u16) {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let script = "import socket, sys, time\n\
                      s = socket.socket()\n\
                      s.bind(('127.0.0.1', 0))\n\
                      s.listen()\n\
                      print(s.getsockname()[1], flush=True)\n\
                      time.sleep(120)\n";
        let mut child = Command::new("sh")
            .args(["-c", "python3 -c \"$0\"; :", script])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stdout = child.stdout.take().unwrap();
        let group = Group(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("python3 printed its port");
        (group, port)
    }

    #[test]
    fn a_listener_of_another_process_in_the_group_is_found_by_group() {
        let (group, port) = spawn_group_binding_a_port();
        let sh = group.0.id();
        let address = format!("127.0.0.1:{port}");
        // The shell itself holds no socket: only the group finds it.
        let alone = own_listeners(sh, None, &none()).unwrap();
        assert!(alone.is_empty(), "{alone:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = own_listeners(sh, Some(sh), &none()).unwrap();
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].address, address);
        assert_ne!(found[0].pid, sh, "held by the python child");
        assert_eq!(
            stat_pgrp(&std::fs::read_to_string(format!("/proc/{}/stat", found[0].pid)).unwrap()),
            Some(sh)
        );
        // Nothing of this test process leaks into the group's answer.
        let _mine = TcpListener::bind("127.0.0.1:0").unwrap();
        let again = own_listeners(sh, Some(sh), &none()).unwrap();
        assert_eq!(again, found);
    }

    #[test]
    fn tcp_lines_are_parsed_and_only_listeners_kept() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(tcp_listener(header), None);
        let listen = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        let expected_ip = if cfg!(target_endian = "little") {
            "127.0.0.1"
        } else {
            "1.0.0.127"
        };
        assert_eq!(
            tcp_listener(listen),
            Some((123456, format!("{expected_ip}:8080")))
        );
        let established = listen.replacen(" 0A ", " 01 ", 1);
        assert_eq!(tcp_listener(&established), None);
        let any6 = "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1";
        assert_eq!(tcp_listener(any6), Some((42, "[::]:80".into())));
        for odd in [
            "",
            "   0:",
            "0: zz:zz 0:0 0A",
            "0: 0100007F:1F90 x 0A a b c d e",
        ] {
            assert_eq!(tcp_listener(odd), None, "{odd:?}");
        }
        // Odd address widths and non-ASCII never panic.
        for odd in [
            "0100007:1F90",
            "0100007F0:1F90",
            "é1000007F:1F90",
            ":",
            "0100007F:",
        ] {
            assert_eq!(parse_tcp_address(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn unix_lines_are_parsed_and_only_listeners_kept() {
        let header = "Num       RefCount Protocol Flags    Type St Inode Path";
        assert_eq!(unix_listener(header), None);
        let listen = "0000000000000000: 00000002 00000000 00010000 0001 01 33 /run/a b.sock";
        assert_eq!(unix_listener(listen), Some((33, "/run/a b.sock".into())));
        let abstract_ = "0000000000000000: 00000002 00000000 00010000 0001 01 34 @name";
        assert_eq!(unix_listener(abstract_), Some((34, "@name".into())));
        let unnamed = "0000000000000000: 00000002 00000000 00010000 0001 01 35";
        assert_eq!(unix_listener(unnamed), Some((35, "unix socket".into())));
        let connected = "0000000000000000: 00000003 00000000 00000000 0001 03 36 /run/x";
        assert_eq!(unix_listener(connected), None);
        for odd in [
            "",
            "0000: 1 0",
            "0000: 1 0 zz 0001 01 1",
            "0: 1 0 00010000 1 1 x",
        ] {
            assert_eq!(unix_listener(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn stat_pgrp_counts_fields_after_the_command_name() {
        assert_eq!(stat_pgrp("12 (sh) S 1 12 12 0 -1"), Some(12));
        assert_eq!(stat_pgrp("12 (a) b (c) R 1 77 12 0"), Some(77));
        assert_eq!(stat_pgrp("12 (sh"), None);
        assert_eq!(stat_pgrp(""), None);
    }

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_link_inode(Path::new("socket:[9]")), Some(9));
        assert_eq!(socket_link_inode(Path::new("pipe:[9]")), None);
        assert_eq!(socket_link_inode(Path::new("/tmp/socket:[9]")), None);
        assert_eq!(socket_link_inode(Path::new("socket:[x]")), None);
    }
}
