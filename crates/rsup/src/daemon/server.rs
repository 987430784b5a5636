//! The control socket: checks who connects, reads one request, streams the
//! replies back.

use super::actions;
use super::lifecycle::Daemon;
use super::{reexec, retire};
use crate::lines::read_line;
use nix::sys::socket::{setsockopt, sockopt};
use rsup_proto::control::{Reply, Request};
use rsup_proto::framing::{decode, encode};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// A client has this long to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn handle_connection(daemon: Arc<Daemon>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    if let Err(message) = check_peer(&write) {
        let _ = write.write_all(&encode(&Reply::Error { message })).await;
        return;
    }
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let request =
        match tokio::time::timeout(REQUEST_TIMEOUT, read_line(&mut reader, &mut line)).await {
            Ok(Ok(true)) => decode::<Request>(&line).map_err(|e| format!("bad request: {e}")),
            Ok(Ok(false)) => return,
            Ok(Err(e)) => Err(format!("bad request: {e}")),
            Err(_) => Err("no request received in time".to_string()),
        };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            let _ = write.write_all(&encode(&Reply::Error { message })).await;
            return;
        }
    };
    if let Request::ReExec { exe } = request {
        // Answered on this connection, by the next image if all goes well.
        match reader.into_inner().reunite(write) {
            Ok(stream) => reexec::serve(daemon, exe, stream).await,
            Err(e) => tracing::warn!("update connection: {e}"),
        }
        return;
    }
    // A subscription lasts as long as its client: it holds back no
    // update, and ends with this daemon's image.
    if let Request::Subscribe { logs } = request {
        actions::subscribe::serve(&daemon, logs, reader, write).await;
        return;
    }
    let _busy = match retire::admit(&daemon, &request) {
        Ok(busy) => busy,
        Err(message) => {
            let _ = write.write_all(&encode(&Reply::Error { message })).await;
            return;
        }
    };

    // A list is encoded straight from the instances' states.
    if let Request::List { target, pm2 } = &request {
        let line = actions::list::list_line(&daemon, target.as_ref(), *pm2);
        make_room(&write, line.len());
        let _ = write.write_all(&line).await;
        let _ = write.shutdown().await;
        // Only a list in PM2's shape is written in the kept memory: a
        // native list's (twice the size, with its environments) would only
        // make what is kept larger.
        if *pm2 {
            daemon.list_memory.recycle(line);
        }
        return;
    }

    // Progress lines go out as they happen; the final reply closes.
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<Reply>();
    let is_kill = matches!(request, Request::Kill);
    let work = actions::handle(&daemon, request, progress_tx);
    tokio::pin!(work);
    let final_reply = loop {
        tokio::select! {
            reply = &mut work => break reply,
            Some(p) = progress_rx.recv() => {
                // A client that went away must not stop the action.
                let _ = write.write_all(&encode(&p)).await;
            }
        }
    };
    while let Ok(p) = progress_rx.try_recv() {
        let _ = write.write_all(&encode(&p)).await;
    }
    let _ = write.write_all(&encode(&final_reply)).await;
    let _ = write.shutdown().await;
    if is_kill {
        daemon.exit.notify_one();
    }
}

/// Lets the socket hold a reply of `len` bytes (a list of a thousand
/// processes is a megabyte), so it goes out in one write instead of a
/// few hundred kilobytes per wake-up of the client; the kernel caps the
/// size at `net.core.wmem_max`.
fn make_room(stream: &tokio::net::unix::OwnedWriteHalf, len: usize) {
    const DEFAULT: usize = 200 * 1024;
    if len > DEFAULT {
        let _ = setsockopt(stream.as_ref(), sockopt::SndBuf, &len);
    }
}

/// Only the daemon's own user (and root) may control it.
fn check_peer(stream: &tokio::net::unix::OwnedWriteHalf) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let cred = stream
        .as_ref()
        .peer_cred()
        .map_err(|e| format!("cannot read peer credentials: {e}"))?;
    if cred.uid() == me || cred.uid() == 0 {
        Ok(())
    } else {
        tracing::warn!(
            uid = cred.uid(),
            pid = ?cred.pid(),
            "refused control connection from another user"
        );
        Err(format!(
            "permission denied: this rsup daemon belongs to uid {me}, not uid {}",
            cred.uid()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    #[tokio::test]
    async fn a_large_reply_gets_room_for_one_write() {
        let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let (daemon_side, _client) = UnixStream::pair().unwrap();
        let (_read, write) = daemon_side.into_split();
        let len = 1 << 20;
        make_room(&write, len);
        let room = getsockopt(write.as_ref(), sockopt::SndBuf).unwrap();
        assert!(room >= len.min(wmem_max), "{room}");
    }

    /// What a list in PM2's shape was written in is kept for the next;
    /// a native list's memory is not.
    #[tokio::test]
    async fn only_a_pm2_lists_memory_is_kept() {
        use tokio::io::AsyncReadExt;
        let home = tempfile::tempdir().unwrap();
        let daemon = Daemon::for_tests(home.path());
        let sleeper = crate::test_support::sleeper("sleeper", 1);
        let app = daemon.apps.create(vec![sleeper]).unwrap().remove(0);
        app.run(crate::daemon::app::Op::Start(1)).await.unwrap();
        for (pm2, kept) in [(false, false), (true, true)] {
            let (daemon_side, mut client) = UnixStream::pair().unwrap();
            let request = Request::List { target: None, pm2 };
            client.write_all(&encode(&request)).await.unwrap();
            handle_connection(daemon.clone(), daemon_side).await;
            let mut reply = Vec::new();
            client.read_to_end(&mut reply).await.unwrap();
            assert!(reply.starts_with(b"{\"reply\":"));
            assert_eq!(daemon.list_memory.spare_capacity() > 0, kept, "pm2: {pm2}");
        }
        app.run(crate::daemon::app::Op::Remove(
            crate::daemon::app::Selection::All,
        ))
        .await
        .unwrap();
    }
}
