//! The daemon's event bus: each step of each instance's life and the
//! processes' output, for the clients that subscribed (the Node API's
//! `launchBus`, served by `actions/subscribe.rs`).
//!
//! Publishing never waits, and costs one counter read while no one
//! listens: events go into one ring of [`CAPACITY`] shared by every
//! subscriber (tokio's broadcast channel), each kept only until every
//! subscriber has read it. A subscriber that falls further behind than the
//! ring misses the oldest events and is told how many; it never holds up
//! an instance, a log copier or another subscriber.

use super::instance::{Identity, InstanceState};
use rsup_proto::events::LogStream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::broadcast;

/// Events held for the slowest subscriber. Output is read at most 16 KiB
/// at a time, so this bounds what a slow subscriber can cost at 8 MiB.
pub const CAPACITY: usize = 512;

pub enum Event {
    /// A step in an instance's life, named as PM2 names it.
    Process {
        name: &'static str,
        manually: bool,
        at_ms: u64,
        identity: Arc<Identity>,
        state: InstanceState,
    },
    /// A message a process sent on its Node IPC channel: the app's own
    /// (`process.send`), or the `process:exception` rsup's Node preload
    /// sends for an uncaught exception (npm/rsup/lib/exception-report.js).
    Message {
        source: Arc<LogSource>,
        at_ms: u64,
        message: serde_json::Value,
    },
    /// One read of a process's stdout or stderr.
    Log {
        source: Arc<LogSource>,
        stream: LogStream,
        at_ms: u64,
        data: Vec<u8>,
    },
}

/// Whose output or message an event carries.
pub struct LogSource {
    pub id: u32,
    pub name: String,
    pub namespace: String,
}

pub struct Events {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    fn listened(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Publishes a step of an instance's life, with its state right after.
    pub fn process(
        &self,
        name: &'static str,
        manually: bool,
        identity: &Arc<Identity>,
        state: &InstanceState,
    ) {
        if !self.listened() {
            return;
        }
        let _ = self.sender.send(Arc::new(Event::Process {
            name,
            manually,
            at_ms: super::now_ms(),
            identity: identity.clone(),
            state: state.clone(),
        }));
    }

    /// Publishes a message a process sent (`process.send`).
    pub fn message(&self, source: &Arc<LogSource>, message: serde_json::Value) {
        if !self.listened() {
            return;
        }
        let _ = self.sender.send(Arc::new(Event::Message {
            source: source.clone(),
            at_ms: super::now_ms(),
            message,
        }));
    }

    fn log(&self, source: &Arc<LogSource>, stream: LogStream, data: &[u8]) {
        if !self.listened() {
            return;
        }
        let _ = self.sender.send(Arc::new(Event::Log {
            source: source.clone(),
            stream,
            at_ms: super::now_ms(),
            data: data.to_vec(),
        }));
    }
}

/// Where a process's messages go: the bus, as coming from `source`.
pub struct MessageRelay {
    pub events: Arc<Events>,
    pub source: Arc<LogSource>,
}

impl MessageRelay {
    pub fn publish(&self, message: serde_json::Value) {
        self.events.message(&self.source, message);
    }
}

/// `pipe`, publishing a copy of everything read from it on `events` (with
/// none, reading it as it is).
pub fn tap<R>(
    events: Option<&Arc<Events>>,
    pipe: R,
    source: Arc<LogSource>,
    stream: LogStream,
) -> Tapped<R> {
    Tapped {
        pipe,
        events: events.cloned(),
        source,
        stream,
    }
}

/// A process's stdout or stderr, read by its log copier, with a copy of
/// each read published on the bus.
pub struct Tapped<R> {
    pipe: R,
    events: Option<Arc<Events>>,
    source: Arc<LogSource>,
    stream: LogStream,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tapped<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.pipe).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(events)) = (&polled, &this.events) {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                events.log(&this.source, this.stream, read);
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::sync::broadcast::error::RecvError;

    fn source() -> Arc<LogSource> {
        Arc::new(LogSource {
            id: 4,
            name: "api".into(),
            namespace: "default".into(),
        })
    }

    #[tokio::test]
    async fn a_tapped_pipe_reads_as_before_and_publishes_each_read() {
        let events = Arc::new(Events::default());
        let mut rx = events.subscribe();
        let mut tapped = tap(
            Some(&events),
            &b"hello\nworld"[..],
            source(),
            LogStream::Out,
        );
        let mut all = String::new();
        tapped.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello\nworld");
        let mut published = Vec::new();
        while let Ok(event) = rx.try_recv() {
            match &*event {
                Event::Log {
                    source,
                    stream,
                    data,
                    ..
                } => {
                    assert_eq!((source.id, *stream), (4, LogStream::Out));
                    published.extend_from_slice(data);
                }
                Event::Process { .. } | Event::Message { .. } => {
                    panic!("a log read published another event")
                }
            }
        }
        assert_eq!(published, b"hello\nworld");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_misses_the_oldest_and_learns_how_many() {
        let events = Arc::new(Events::default());
        let mut slow = events.subscribe();
        let source = source();
        for _ in 0..CAPACITY + 5 {
            events.log(&source, LogStream::Err, b"x");
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(5))));
        let mut left = 0;
        while slow.try_recv().is_ok() {
            left += 1;
        }
        assert_eq!(left, CAPACITY);
    }
}
