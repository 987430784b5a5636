//! Talking to the daemon: connect (starting it when it does not run), send
//! one request, relay progress, return the final reply.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use rsup_proto::control::{Reply, Request};
use rsup_proto::framing::{decode, encode, read_line, MAX_LINE};
use std::io::{BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started daemon may take to open its socket.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a daemon may take to answer a request that needs no work
/// (`ping`, `list`): one that takes longer is stopped or stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a running daemon; `None` when none runs. Nothing is sent
/// before both the folder and the process listening in it are known to be
/// the caller's (or root's): a request carries the caller's environment.
pub fn connect_existing(home: &Home) -> Result<Option<UnixStream>> {
    let Some(owner) = home.trusted_owner()? else {
        return Ok(None);
    };
    let stream = match UnixStream::connect(home.socket()) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None)
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot connect to the rsup daemon at {}",
                    home.socket().display()
                )
            })
        }
    };
    check_listener(&stream, owner, home)?;
    Ok(Some(stream))
}

/// The process that listens must be the folder's owner or root. The
/// folder's checks make another listener unlikely, but only the kernel's
/// word on the process at the other end (SO_PEERCRED) is proof.
fn check_listener(stream: &UnixStream, owner: u32, home: &Home) -> Result<()> {
    let cred = getsockopt(stream, PeerCredentials)
        .with_context(|| format!("reading who listens at {}", home.socket().display()))?;
    let uid = cred.uid();
    if uid == owner || uid == 0 {
        return Ok(());
    }
    bail!(
        "{} is served by uid {uid}, not by its folder's owner (uid {owner}); refusing to send it anything",
        home.socket().display()
    )
}

/// Connects, starting the daemon first when it does not run.
pub fn connect(home: &Home) -> Result<UnixStream> {
    if let Some(s) = connect_existing(home)? {
        return Ok(s);
    }
    start_daemon(home)?;
    let deadline = Instant::now() + DAEMON_START_TIMEOUT;
    loop {
        if let Some(s) = connect_existing(home)? {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!(
                "the rsup daemon did not start; see {}",
                home.daemon_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `rsup daemon` detached from this terminal, with this environment
/// (apps inherit it, as PM2's do), logging to `RSUP_HOME/rsup.log`.
fn start_daemon(home: &Home) -> Result<()> {
    // Read by the daemon: a bad value is said here, not in its log.
    crate::daemon::HealthOptions::from_env().map_err(anyhow::Error::msg)?;
    // The daemon outlives us; its exit is collected by init.
    spawn_daemon(home)?;
    Ok(())
}

/// Starts this binary as the daemon's keeper (which starts the daemon),
/// detached, logging to `rsup.log`.
fn spawn_daemon(home: &Home) -> Result<Child> {
    home.ensure()?;
    let log = crate::daemon::open_daemon_log(home)?;
    let exe = std::env::current_exe().context("locating the rsup binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("keeper");
    // A daemon started on demand is nobody's service: it must not
    // report to the systemd unit the CLI happens to run under.
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from the
    // terminal's session so the terminal's hangup does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn().context("starting the rsup daemon")
}

/// Sends `request` and returns the final reply, passing each progress
/// message to `on_progress` as it arrives.
pub fn send(
    stream: UnixStream,
    request: &Request,
    mut on_progress: impl FnMut(&str),
) -> Result<Reply> {
    // A caller that set its own limit keeps it.
    if matches!(request, Request::Ping | Request::List { .. }) && stream.read_timeout()?.is_none() {
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    }
    let mut writer = stream.try_clone()?;
    let line = encode(request);
    check_size(request, line.len())?;
    // A daemon that refuses us answers and closes before reading; its
    // answer is still there to read, and says more than a broken pipe.
    let sent = writer.write_all(&line);
    // A list of a thousand processes is a megabyte: read it in large
    // steps.
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = Vec::new();
    loop {
        next_line(&mut reader, &mut line, &sent)?;
        let reply: Reply = decode(&line).context("unreadable reply from the rsup daemon")?;
        match reply {
            Reply::Progress { message } => on_progress(&message),
            other => return Ok(other),
        }
    }
}

/// A request the daemon would refuse as too long is refused here, saying
/// what made it so: almost always the environment the apps carry.
fn check_size(request: &Request, len: usize) -> Result<()> {
    if len <= MAX_LINE {
        return Ok(());
    }
    let apps = match request {
        Request::Start { apps, .. } | Request::Apply { apps, .. } => apps.as_slice(),
        _ => &[],
    };
    let updated = match request {
        Request::Restart { update, .. } | Request::Reload { update, .. } => {
            update.inherited_env.as_ref()
        }
        _ => None,
    };
    let env: usize = apps
        .iter()
        .flat_map(|a| a.env.iter().chain(&a.inherited_env))
        .chain(updated.into_iter().flatten())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let mb = |n: usize| n as f64 / 1_000_000.0;
    bail!(
        "the request is {:.1} MB, more than the {} MiB the daemon accepts; the apps' environment makes up {:.1} MB of it (variables set in this shell or in env of the config)",
        mb(len),
        MAX_LINE >> 20,
        mb(env)
    )
}

/// Reads the daemon's next line into `line`. `sent` is how writing the
/// request went: when the daemon closes without a word, that is the better
/// explanation.
fn next_line(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
    sent: &std::io::Result<()>,
) -> Result<()> {
    match read_line(reader, line) {
        Ok(true) => Ok(()),
        Ok(false) => {
            if let Err(e) = sent {
                bail!("cannot send the request to the rsup daemon: {e}");
            }
            bail!("the rsup daemon closed the connection without answering")
        }
        // The only bad data a line reader reports is a line too long.
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            bail!("the rsup daemon sent a reply longer than {MAX_LINE} bytes")
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => bail!(
            "the rsup daemon did not answer within {} s; it may be stopped (SIGSTOP) or stuck",
            ANSWER_TIMEOUT.as_secs()
        ),
        Err(e) => Err(e).context("reading the rsup daemon's reply"),
    }
}

/// Checks that the daemon answers at all, before a request that may
/// rightly take long (a reload waits for every new process): a stopped
/// daemon must not leave the CLI waiting forever.
pub fn check_answers(home: &Home) -> Result<()> {
    if let Some(stream) = connect_existing(home)? {
        send(stream, &Request::Ping, |_| {})?;
    }
    Ok(())
}

/// Like [`send`] without progress, returning the final reply's line as the
/// daemon wrote it, for output that passes the daemon's JSON through.
pub fn send_raw(stream: UnixStream, request: &Request) -> Result<Vec<u8>> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let sent = writer.write_all(&encode(request));
    // A list of a thousand processes is a megabyte: read it in a few
    // large steps into a line sized for it (memory not written to costs
    // nothing).
    let mut reader = BufReader::with_capacity(1 << 18, stream);
    let mut line = Vec::with_capacity(1 << 21);
    loop {
        next_line(&mut reader, &mut line, &sent)?;
        if !line.starts_with(br#"{"reply":"progress""#) {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Runs `send` against a fake daemon that reads the request, then
    /// writes `answer` and closes.
    fn send_to(answer: Vec<u8>) -> (Result<Reply>, Vec<String>) {
        let (client, mut daemon) = UnixStream::pair().unwrap();
        let fake = std::thread::spawn(move || {
            let mut request = [0u8; 64];
            let _ = daemon.read(&mut request).unwrap();
            let _ = daemon.write_all(&answer);
        });
        let mut progress = Vec::new();
        let reply = send(client, &Request::Ping, |m| progress.push(m.to_string()));
        fake.join().unwrap();
        (reply, progress)
    }

    #[test]
    fn relays_progress_and_returns_the_final_reply() {
        let mut answer = encode(&Reply::Progress {
            message: "step".into(),
        });
        answer.extend(encode(&Reply::Error {
            message: "done".into(),
        }));
        let (reply, progress) = send_to(answer);
        assert_eq!(
            reply.unwrap(),
            Reply::Error {
                message: "done".into()
            }
        );
        assert_eq!(progress, ["step"]);
    }

    #[test]
    fn refuses_a_reply_longer_than_the_limit() {
        let (reply, _) = send_to(vec![b' '; MAX_LINE + 1]);
        let message = reply.unwrap_err().to_string();
        assert!(message.contains("longer than"), "{message}");
    }

    #[test]
    fn reports_a_daemon_that_closes_without_answering() {
        let (reply, _) = send_to(Vec::new());
        assert!(reply.unwrap_err().to_string().contains("without answering"));
    }
}
