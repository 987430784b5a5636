//! `subscribe`: the daemon's bus (see [`crate::daemon::events`]) streamed
//! to one client, one [`BusEvent`] per line, until it closes the
//! connection. This is what the Node API's `launchBus` reads.
//!
//! A subscriber never slows the daemon: events wait in the bus's bounded
//! ring, and only this task waits on the client. One that falls behind the
//! ring is told how many events it missed; one that reads nothing for
//! [`WRITE_LIMIT`] is disconnected.

use super::list::process_info;
use crate::daemon::events::Event;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::Reply;
use rsup_proto::events::BusEvent;
use rsup_proto::framing::encode;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

/// How long a line may wait for the subscriber to read.
const WRITE_LIMIT: Duration = Duration::from_secs(10);

/// Streams events to the client on `reader`/`writer`; `logs` includes the
/// processes' output. Returns once the client has gone.
pub async fn serve(
    daemon: &Daemon,
    logs: bool,
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
) {
    let mut events = daemon.apps.env.events.subscribe();
    if !send(&mut writer, &encode(&Reply::Subscribed)).await {
        return;
    }
    let mut scrap = [0u8; 256];
    loop {
        let line = tokio::select! {
            received = events.recv() => match received {
                Ok(event) => match to_wire(&event, logs) {
                    Some(message) => encode(&message),
                    None => continue,
                },
                Err(RecvError::Lagged(count)) => encode(&BusEvent::Dropped { count }),
                Err(RecvError::Closed) => return,
            },
            // A subscriber sends nothing after its request: reading only
            // tells when it has closed.
            read = reader.read(&mut scrap) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        if !send(&mut writer, &line).await {
            return;
        }
    }
}

async fn send(writer: &mut (impl AsyncWrite + Unpin), line: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_LIMIT, writer.write_all(line)).await,
        Ok(Ok(()))
    )
}

/// The line for `event`; `None` for output when `logs` is off.
fn to_wire(event: &Event, logs: bool) -> Option<BusEvent> {
    match event {
        Event::Process {
            name,
            manually,
            at_ms,
            identity,
            state,
        } => Some(BusEvent::Process {
            event: name.to_string(),
            manually: *manually,
            at_ms: *at_ms,
            process: Box::new(process_info(identity, state.clone(), None, false)),
        }),
        Event::Message {
            source,
            at_ms,
            message,
        } => Some(BusEvent::Message {
            id: source.id,
            name: source.name.clone(),
            namespace: source.namespace.clone(),
            at_ms: *at_ms,
            message: message.clone(),
        }),
        Event::Log {
            source,
            stream,
            at_ms,
            data,
        } => logs.then(|| BusEvent::Log {
            stream: *stream,
            id: source.id,
            name: source.name.clone(),
            namespace: source.namespace.clone(),
            at_ms: *at_ms,
            data: String::from_utf8_lossy(data).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::app::{Op, Selection};
    use crate::daemon::events::{tap, LogSource, CAPACITY};
    use crate::daemon::instance::{Identity, InstanceState};
    use rsup_proto::app::Status;
    use rsup_proto::events::LogStream;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, ReadHalf};

    fn daemon(home: &tempfile::TempDir) -> Arc<Daemon> {
        Daemon::for_tests(home.path())
    }

    type Client = BufReader<ReadHalf<DuplexStream>>;

    /// Serves a subscriber on one end of an in-memory pipe of `capacity`
    /// bytes; returns the other end, already past `subscribed`.
    async fn subscribe(
        daemon: &Arc<Daemon>,
        logs: bool,
        capacity: usize,
    ) -> (
        Client,
        tokio::io::WriteHalf<DuplexStream>,
        tokio::task::JoinHandle<()>,
    ) {
        let (client, server) = tokio::io::duplex(capacity);
        let (server_read, server_write) = tokio::io::split(server);
        let daemon = daemon.clone();
        let task =
            tokio::spawn(async move { serve(&daemon, logs, server_read, server_write).await });
        let (client_read, client_write) = tokio::io::split(client);
        let mut client = BufReader::new(client_read);
        assert_eq!(
            next(&mut client).await,
            serde_json::json!({"reply": "subscribed"})
        );
        (client, client_write, task)
    }

    async fn next(client: &mut Client) -> serde_json::Value {
        let mut line = String::new();
        client.read_line(&mut line).await.unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Reads events until one is `event` for a process (or, for `log`, a
    /// line of output containing `text`); returns the events seen.
    async fn until(client: &mut Client, event: &str, text: &str) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let e = next(client).await;
            seen.push(e.clone());
            let found = match e["type"].as_str() {
                Some("process") => e["event"] == event,
                Some("log") => event == "log" && e["data"].as_str().unwrap().contains(text),
                _ => false,
            };
            if found {
                return seen;
            }
        }
    }

    fn events(seen: &[serde_json::Value]) -> Vec<&str> {
        seen.iter()
            .filter(|e| e["type"] == "process")
            .map(|e| e["event"].as_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_subscriber_hears_each_step_and_the_output_until_it_closes() {
        let home = tempfile::tempdir().unwrap();
        let daemon = daemon(&home);
        let (mut client, client_write, task) = subscribe(&daemon, true, 1 << 16).await;

        let mut spec = crate::test_support::spec();
        spec.name = "talker".into();
        spec.script = "sh".into();
        spec.args = vec!["-c".into(), "echo hello; exec sleep 1000".into()];
        spec.interpreter = None;
        spec.node = false;
        spec.cwd = "/".into();
        spec.env = [("PATH".to_string(), "/usr/bin:/bin".to_string())].into();
        let app = daemon.apps.create(vec![spec]).unwrap().remove(0);
        app.run(Op::Start(1)).await.unwrap();

        let seen = until(&mut client, "log", "hello").await;
        let log = seen.last().unwrap();
        assert_eq!(log["stream"], "out");
        assert_eq!(log["name"], "talker");
        assert_eq!(log["namespace"], "default");
        let mut seen = seen.clone();
        if !events(&seen).contains(&"online") {
            seen.extend(until(&mut client, "online", "").await);
        }
        assert_eq!(events(&seen), ["start", "online"]);
        let online = seen.iter().find(|e| e["event"] == "online").unwrap();
        assert_eq!(online["process"]["name"], "talker");
        assert_eq!(online["process"]["status"], "online");
        assert_eq!(online["manually"], false);

        app.run(Op::Stop(Selection::All)).await.unwrap();
        let seen = until(&mut client, "stop", "").await;
        assert_eq!(events(&seen), ["exit", "stop"]);
        let stop = seen.last().unwrap();
        assert_eq!(stop["process"]["status"], "stopped");
        assert_eq!(stop["manually"], true);

        app.run(Op::Remove(Selection::All)).await.unwrap();
        assert_eq!(events(&until(&mut client, "delete", "").await), ["delete"]);

        // The client goes: so does its task.
        drop(client);
        drop(client_write);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the subscriber's task outlived its client")
            .unwrap();
    }

    /// Publishes `count` log events of `size` bytes each, without yielding.
    async fn publish(daemon: &Daemon, count: usize, size: usize) {
        let source = Arc::new(LogSource {
            id: 0,
            name: "x".into(),
            namespace: "default".into(),
        });
        let bytes = vec![b'x'; size];
        for _ in 0..count {
            let events = Some(&daemon.apps.env.events);
            let mut tapped = tap(events, &bytes[..], source.clone(), LogStream::Out);
            let mut buf = vec![0u8; size];
            tapped.read_exact(&mut buf).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_events_it_missed() {
        let home = tempfile::tempdir().unwrap();
        let daemon = daemon(&home);
        let (mut client, _write, _task) = subscribe(&daemon, true, 1 << 16).await;
        publish(&daemon, CAPACITY + 10, 1).await;
        assert_eq!(
            next(&mut client).await,
            serde_json::json!({"type": "dropped", "count": 10})
        );
        assert_eq!(next(&mut client).await["type"], "log");
    }

    #[tokio::test]
    async fn without_logs_output_is_left_out() {
        let home = tempfile::tempdir().unwrap();
        let daemon = daemon(&home);
        let (mut client, _write, _task) = subscribe(&daemon, false, 1 << 16).await;
        publish(&daemon, 3, 1).await;
        let identity = Arc::new(Identity {
            id: 7,
            name: "quiet".into(),
            instance: 0,
            out_log: "/l/out".into(),
            err_log: "/l/err".into(),
            combined_log: None,
            pid_file: "/p/quiet-7.pid".into(),
            created_at_ms: 1,
            unique_id: "u".into(),
        });
        let state = InstanceState {
            status: Status::Stopped,
            pid: None,
            restarts: 0,
            unstable_restarts: 0,
            started_at_ms: None,
            last_exit: None,
            spec: Arc::new(crate::test_support::spec()),
            log_health: vec![Arc::default(), Arc::default()],
        };
        daemon
            .apps
            .env
            .events
            .process("stop", true, &identity, &state);
        // The output came first; the first line is the step after it.
        let line = next(&mut client).await;
        assert_eq!(line["type"], "process", "{line}");
        assert_eq!(line["event"], "stop");
        assert_eq!(line["process"]["id"], 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_stops_reading_is_disconnected() {
        let home = tempfile::tempdir().unwrap();
        let daemon = daemon(&home);
        let (client, _write, task) = subscribe(&daemon, true, 1024).await;
        // More than the pipe holds, then nobody reads.
        publish(&daemon, 8, 1024).await;
        tokio::time::timeout(WRITE_LIMIT * 2, task)
            .await
            .expect("a subscriber that reads nothing was kept")
            .unwrap();
        drop(client);
    }
}
