//! The two message channels of a running process: Node's IPC channel (what
//! `process.send` and `process.on('message')` use, so PM2 apps work
//! unchanged) and rsup's worker channel (what the addon speaks).
//!
//! Readers turn what the child says into [`ChildEvent`]s; nothing a child
//! sends can do more than that, and garbage is ignored.

use super::events::MessageRelay;
use super::freeze::{Gate, Reader};
use crate::lines::read_line;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use rsup_proto::framing::{decode, encode};
use rsup_proto::worker::{ListenAddress, SupervisorMessage, WorkerMessage};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Something a running process told the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    Ready,
    Listen {
        request: u64,
        address: ListenAddress,
    },
    /// Listeners closed and in-flight requests finished after a shutdown.
    Drained,
}

/// How long a write to a child may block: a child that stops reading must
/// not stall its supervisor.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// Read buffer of each channel. Children say a few short lines in their
/// lifetime (`ready`, a listen request); longer lines take several reads.
const READ_BUF: usize = 256;
/// A line buffer grown past this by a long message is given back after it.
const KEEP_LINE: usize = 4 * 1024;

pub struct Channels {
    node: Option<OwnedWriteHalf>,
    worker: OwnedWriteHalf,
}

impl Channels {
    /// Starts the readers, which end when the child closes its side and
    /// pause when `freeze` asks them to. The events are boxed: every
    /// process has a channel of them, which holds room for 32 from the
    /// start.
    pub fn open(
        node: Option<UnixStream>,
        worker: UnixStream,
        events: mpsc::Sender<Box<ChildEvent>>,
        relay: Option<MessageRelay>,
        freeze: Option<&Arc<Gate>>,
    ) -> Channels {
        let node = node.map(|stream| {
            let (read, write) = stream.into_split();
            let paused = freeze.map(Reader::register);
            tokio::spawn(read_node_channel(read, events.clone(), relay, paused));
            write
        });
        let (read, write) = worker.into_split();
        let paused = freeze.map(Reader::register);
        tokio::spawn(read_worker_channel(read, events, paused));
        Channels {
            node,
            worker: write,
        }
    }

    /// The descriptors of the worker channel and of Node's, which stay
    /// open as long as these channels do.
    pub fn raw_fds(&self) -> (RawFd, Option<RawFd>) {
        let worker: &UnixStream = self.worker.as_ref();
        let node = self.node.as_ref().map(|w| {
            let stream: &UnixStream = w.as_ref();
            stream.as_raw_fd()
        });
        (worker.as_raw_fd(), node)
    }

    /// Delivers `'shutdown'` to `process.on('message')`. False when the app
    /// has no Node channel or no longer listens on it.
    pub async fn send_node_shutdown(&mut self) -> bool {
        match self.node.as_mut() {
            Some(w) => write_line(w, &encode(&"shutdown")).await,
            None => false,
        }
    }

    pub async fn send_worker(&mut self, msg: &SupervisorMessage) -> bool {
        write_line(&mut self.worker, &encode(msg)).await
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS) to its first byte.
    pub async fn send_worker_with_fd(&mut self, msg: &SupervisorMessage, fd: &OwnedFd) -> bool {
        let line = encode(msg);
        let sent = tokio::time::timeout(
            WRITE_TIMEOUT,
            send_with_fd(self.worker.as_ref(), &line, fd.as_fd()),
        )
        .await;
        matches!(sent, Ok(Ok(())))
    }
}

/// Writes `line` on `stream` with `fd` attached (SCM_RIGHTS) to its first
/// byte, so that a reader that keeps descriptors in arrival order gives
/// each to its line.
async fn send_with_fd(stream: &UnixStream, line: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let raw = stream.as_raw_fd();
    let fds = [fd.as_raw_fd()];
    let first = stream
        .async_io(Interest::WRITABLE, || {
            sendmsg::<UnixAddr>(
                raw,
                &[IoSlice::new(line)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(std::io::Error::from)
        })
        .await?;
    // The descriptor went with the first bytes; the rest is plain.
    let mut rest = &line[first..];
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn write_line(w: &mut OwnedWriteHalf, line: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, w.write_all(line)).await,
        Ok(Ok(()))
    )
}

async fn read_node_channel(
    read: tokio::net::unix::OwnedReadHalf,
    events: mpsc::Sender<Box<ChildEvent>>,
    relay: Option<MessageRelay>,
    mut freeze: Option<Reader>,
) {
    let mut reader = BufReader::with_capacity(READ_BUF, read);
    let mut line = Vec::new();
    while readable(&mut reader, &mut freeze).await {
        if !matches!(read_line(&mut reader, &mut line).await, Ok(true)) {
            return;
        }
        let message = decode::<serde_json::Value>(&line);
        release_if_large(&mut line);
        let Ok(message) = message else { continue };
        // PM2 apps send the bare string 'ready'; Node's own commands
        // (`{cmd: 'NODE_...'}`) are not the app's; everything the app
        // sends goes to the bus, as PM2's does ('ready' too).
        let ready = message == "ready";
        if !node_internal(&message) {
            if let Some(relay) = &relay {
                relay.publish(message);
            }
        }
        if ready && events.send(Box::new(ChildEvent::Ready)).await.is_err() {
            return;
        }
    }
}

/// Waits until there is something to read (or the end), pausing for a
/// freeze meanwhile, but only between messages: with nothing buffered, what
/// the child sent since stays in the socket for the daemon's next image.
/// False on a read error.
async fn readable(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    freeze: &mut Option<Reader>,
) -> bool {
    loop {
        if !reader.buffer().is_empty() {
            return true;
        }
        tokio::select! {
            biased;
            _ = async { freeze.as_mut().unwrap().asked().await }, if freeze.is_some() => {
                freeze.as_mut().unwrap().pause().await;
            }
            // Cancel-safe: what it read stays in the buffer.
            filled = async { reader.fill_buf().await.is_ok() } => return filled,
        }
    }
}

/// A message Node itself sends on the channel (handles, cluster).
fn node_internal(message: &serde_json::Value) -> bool {
    message
        .get("cmd")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|cmd| cmd.starts_with("NODE_"))
}

async fn read_worker_channel(
    read: tokio::net::unix::OwnedReadHalf,
    events: mpsc::Sender<Box<ChildEvent>>,
    mut freeze: Option<Reader>,
) {
    let mut reader = BufReader::with_capacity(READ_BUF, read);
    let mut line = Vec::new();
    while readable(&mut reader, &mut freeze).await {
        if !matches!(read_line(&mut reader, &mut line).await, Ok(true)) {
            return;
        }
        let event = match decode::<WorkerMessage>(&line) {
            Ok(WorkerMessage::Ready) => ChildEvent::Ready,
            Ok(WorkerMessage::Listen { request, address }) => {
                ChildEvent::Listen { request, address }
            }
            Ok(WorkerMessage::Drained) => ChildEvent::Drained,
            Err(_) => {
                release_if_large(&mut line);
                continue;
            }
        };
        release_if_large(&mut line);
        if events.send(Box::new(event)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncWriteExt;

    /// What a reader turns `bytes` into when a child writes them and exits.
    fn events_of(
        bytes: &[u8],
        read: fn(tokio::net::unix::OwnedReadHalf, mpsc::Sender<Box<ChildEvent>>) -> BoxedRead,
    ) -> Vec<ChildEvent> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            let (tx, mut rx) = mpsc::channel(1024);
            let (r, _w) = ours.into_split();
            let reader = tokio::spawn(read(r, tx));
            theirs.write_all(bytes).await.unwrap();
            drop(theirs);
            let _ = reader.await;
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(*e);
            }
            events
        })
    }

    type BoxedRead = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    fn worker(r: tokio::net::unix::OwnedReadHalf, tx: mpsc::Sender<Box<ChildEvent>>) -> BoxedRead {
        Box::pin(read_worker_channel(r, tx, None))
    }

    fn node(r: tokio::net::unix::OwnedReadHalf, tx: mpsc::Sender<Box<ChildEvent>>) -> BoxedRead {
        Box::pin(read_node_channel(r, tx, None, None))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever a child writes, the readers end at its close without a
        /// panic; garbage becomes no event, and a `ready` line among
        /// garbage lines still arrives.
        #[test]
        fn children_cannot_make_the_readers_misbehave(
            garbage in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let junk: Vec<u8> = garbage.iter().copied().filter(|b| *b != b'\n').collect();
            let mut stream = junk.clone();
            stream.extend_from_slice(b"\n\"ready\"\n{\"type\":\"ready\"}\n");
            stream.extend_from_slice(&junk);
            let from_node = events_of(&stream, node);
            prop_assert!(from_node.iter().all(|e| *e == ChildEvent::Ready));
            prop_assert!(!from_node.is_empty());
            let from_worker = events_of(&stream, worker);
            prop_assert!(from_worker.contains(&ChildEvent::Ready));
            let _ = events_of(&garbage, node);
            let _ = events_of(&garbage, worker);
        }
    }
}

fn release_if_large(line: &mut Vec<u8>) {
    if line.capacity() > KEEP_LINE {
        *line = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::worker::WorkerMessage;

    #[tokio::test]
    async fn the_apps_messages_go_to_the_bus_and_nodes_own_do_not() {
        use crate::daemon::events::{Event, Events, LogSource};
        let events = std::sync::Arc::new(Events::default());
        let mut bus = events.subscribe();
        let relay = MessageRelay {
            events: events.clone(),
            source: std::sync::Arc::new(LogSource {
                id: 2,
                name: "api".into(),
                namespace: "default".into(),
            }),
        };
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (read, _write) = ours.into_split();
        let reader = tokio::spawn(read_node_channel(read, tx, Some(relay), None));
        let (_, mut w) = theirs.into_split();
        w.write_all(
            b"{\"cmd\":\"NODE_HANDLE\"}\n\"ready\"\n{\"type\":\"process:msg\",\"data\":1}\n",
        )
        .await
        .unwrap();
        drop(w);
        reader.await.unwrap();
        assert!(matches!(
            rx.recv().await.as_deref(),
            Some(ChildEvent::Ready)
        ));
        let mut relayed = Vec::new();
        while let Ok(event) = bus.try_recv() {
            if let Event::Message {
                message, source, ..
            } = &*event
            {
                assert_eq!(source.id, 2);
                relayed.push(message.to_string());
            }
        }
        assert_eq!(
            relayed,
            ["\"ready\"", "{\"type\":\"process:msg\",\"data\":1}"]
        );
    }

    #[tokio::test]
    async fn reads_lines_longer_than_the_read_buffer() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let _channels = Channels::open(None, ours, tx, None, None);
        let path = format!("/tmp/{}", "p".repeat(READ_BUF * 20));
        let long = WorkerMessage::Listen {
            request: 7,
            address: ListenAddress::Unix { path: path.clone() },
        };
        let mut bytes = encode(&long);
        bytes.extend_from_slice(b"garbage that is not json\n");
        bytes.extend_from_slice(&encode(&WorkerMessage::Ready));
        theirs.write_all(&bytes).await.unwrap();
        match *rx.recv().await.unwrap() {
            ChildEvent::Listen { request, address } => {
                assert_eq!(request, 7);
                assert_eq!(address, ListenAddress::Unix { path });
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(*rx.recv().await.unwrap(), ChildEvent::Ready);
        drop(theirs);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_frozen_channel_leaves_what_comes_unread_until_thawed() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let gate = Arc::new(Gate::default());
        let _channels = Channels::open(None, ours, tx, None, Some(&gate));
        theirs
            .write_all(&encode(&WorkerMessage::Ready))
            .await
            .unwrap();
        assert_eq!(*rx.recv().await.unwrap(), ChildEvent::Ready);
        assert!(gate.freeze(Duration::from_secs(5)).await);
        theirs
            .write_all(&encode(&WorkerMessage::Drained))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "read while frozen");
        gate.thaw();
        assert_eq!(*rx.recv().await.unwrap(), ChildEvent::Drained);
    }

    #[tokio::test]
    async fn node_channel_sees_ready_after_a_long_message() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (worker, _w) = UnixStream::pair().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let _channels = Channels::open(Some(ours), worker, tx, None, None);
        let big = serde_json::json!({ "cmd": "x".repeat(READ_BUF * 10) });
        let mut bytes = encode(&big);
        bytes.extend_from_slice(&encode(&"ready"));
        theirs.write_all(&bytes).await.unwrap();
        assert_eq!(*rx.recv().await.unwrap(), ChildEvent::Ready);
    }
}
