//! A small HTTP/1.1 client that counts every failure, for the reload tests.
//! It does not retry: a request that fails is a failed request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub failures: Mutex<Vec<String>>,
    /// Pids that answered, to show the traffic really moved between
    /// processes.
    pub pids: Mutex<std::collections::BTreeSet<String>>,
}

impl Tally {
    /// Enough requests went through, and not one failed.
    pub fn assert_no_failures(&self) {
        let ok = self.ok.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        assert!(ok > 100, "only {ok} requests went through");
        assert_eq!(
            failed,
            0,
            "{failed} of {} requests failed: {:?}",
            ok + failed,
            self.failures.lock().unwrap()
        );
    }

    /// Waits until `more` requests have gone through from now.
    pub fn wait_for_more(&self, what: &str, more: u64) {
        let seen = self.ok.load(Ordering::SeqCst);
        crate::harness::wait_for(what, || {
            (self.ok.load(Ordering::SeqCst) > seen + more).then_some(())
        });
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(why);
        }
    }
}

/// Runs keep-alive and one-request-per-connection clients while `during`
/// runs (it sees what they have seen so far), and returns their tally.
pub fn under_load(port: u16, during: impl FnOnce(&Tally)) -> Arc<Tally> {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = [true, true, true, false, false]
        .into_iter()
        .map(|keep_alive| {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || load(port, keep_alive, stop, tally))
        })
        .collect();
    during(&tally);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    tally
}

/// Sends requests until `stop`, reusing the connection while the server
/// keeps it open (`keep_alive`) or opening a new one for each request.
pub fn load(port: u16, keep_alive: bool, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    conn = Some(BufReader::new(s));
                }
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let reader = conn.as_mut().unwrap();
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let request = format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: {connection}\r\n\r\n");
        match exchange(reader, &request) {
            Ok((200, body, server_keeps)) => {
                tally.ok.fetch_add(1, Ordering::SeqCst);
                tally.pids.lock().unwrap().insert(body);
                if !(keep_alive && server_keeps) {
                    conn = None;
                }
            }
            Ok((status, _, _)) => {
                tally.fail(format!("status {status}"));
                conn = None;
            }
            Err(e) => {
                tally.fail(format!("{e}"));
                conn = None;
            }
        }
    }
}

/// One request and its response: (status, body, connection stays open).
fn exchange(
    reader: &mut BufReader<TcpStream>,
    request: &str,
) -> std::io::Result<(u16, String, bool)> {
    reader.get_mut().write_all(request.as_bytes())?;
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::other("connection closed before a response"));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut length = 0usize;
    let mut keeps = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed in the headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "connection" => keeps = !value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned(), keeps))
}
