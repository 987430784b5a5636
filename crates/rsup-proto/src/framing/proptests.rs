//! Property tests of [`decode`] for every message type read from a peer:
//! whatever the bytes, it returns, and it accepts only messages.

use super::{decode, encode};
use crate::control::{ApplyAction, ReloadOptions, Reply, Request, ScaleCount, SpecUpdate, Target};
use crate::events::{BusEvent, LogStream};
use crate::worker::{ListenAddress, ListenError, ShutdownReason, SupervisorMessage, WorkerMessage};
use proptest::prelude::*;
use proptest::sample::select;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::fmt::Debug;

/// Checks one decode of `bytes` as `T`, whose variants are named by `tag`.
/// An accepted line is JSON naming its variant, and re-encodes to the same
/// message.
fn decodes_only_messages<T>(bytes: &[u8], tag: &str) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(message) = decode::<T>(bytes) else {
        return Ok(());
    };
    let value: Value = serde_json::from_slice(bytes).expect("accepted input is JSON");
    // serde also takes an internally tagged enum as an array, tag first
    // and then the fields in order: the same message in another shape.
    let named = match &value {
        Value::Array(items) => items.first().is_some_and(Value::is_string),
        _ => value.get(tag).is_some_and(Value::is_string),
    };
    prop_assert!(named, "{value}");
    prop_assert_eq!(decode::<T>(&encode(&message)).unwrap(), message);
    Ok(())
}

fn decodes_every_type_only_as_messages(bytes: &[u8]) -> Result<(), TestCaseError> {
    decodes_only_messages::<Request>(bytes, "cmd")?;
    decodes_only_messages::<Reply>(bytes, "reply")?;
    decodes_only_messages::<WorkerMessage>(bytes, "type")?;
    decodes_only_messages::<BusEvent>(bytes, "type")?;
    decodes_only_messages::<SupervisorMessage>(bytes, "type")
}

/// A valid message: encoding and decoding give it back, as one line; any
/// strict prefix of its JSON is refused.
fn round_trips_and_refuses_prefixes<T>(
    message: &T,
    cut: prop::sample::Index,
) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let line = encode(message);
    prop_assert_eq!(line.iter().position(|b| *b == b'\n'), Some(line.len() - 1));
    prop_assert_eq!(&decode::<T>(&line).unwrap(), message);
    let json = &line[..line.len() - 1];
    let truncated = &json[..cut.index(json.len())];
    prop_assert!(
        decode::<T>(truncated).is_err(),
        "{:?}",
        String::from_utf8_lossy(truncated)
    );
    Ok(())
}

/// Field names and variant names of the protocol, so random JSON often
/// comes close to a message, and sometimes is one.
const KEYS: &[&str] = &[
    "type",
    "cmd",
    "reply",
    "kind",
    "request",
    "address",
    "host",
    "port",
    "path",
    "deadline_ms",
    "error",
    "code",
    "errno",
    "message",
    "target",
    "options",
    "parallel",
    "strict_ready",
    "name",
    "instances",
    "apps",
    "action",
    "processes",
    "pid",
    "version",
    "logs",
    "stream",
    "data",
    "count",
    "event",
    "namespace",
    "at_ms",
];
const NAMES: &[&str] = &[
    "ready",
    "listen",
    "drained",
    "shutdown",
    "listening",
    "tcp",
    "unix",
    "ping",
    "start",
    "stop",
    "restart",
    "reload",
    "delete",
    "apply",
    "scale",
    "list",
    "kill",
    "progress",
    "done",
    "pong",
    "error",
    "subscribe",
    "subscribed",
    "log",
    "process",
    "dropped",
    "out",
    "err",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        select(NAMES).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    let key = prop_oneof![3 => select(KEYS).prop_map(String::from), 1 => any::<String>()];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn listen_address() -> impl Strategy<Value = ListenAddress> {
    prop_oneof![
        (any::<Option<String>>(), any::<u16>())
            .prop_map(|(host, port)| ListenAddress::Tcp { host, port }),
        any::<String>().prop_map(|path| ListenAddress::Unix { path }),
    ]
}

fn worker_message() -> impl Strategy<Value = WorkerMessage> {
    prop_oneof![
        Just(WorkerMessage::Ready),
        Just(WorkerMessage::Drained),
        (any::<u64>(), listen_address())
            .prop_map(|(request, address)| WorkerMessage::Listen { request, address }),
    ]
}

fn shutdown_reason() -> impl Strategy<Value = ShutdownReason> {
    prop_oneof![
        Just(ShutdownReason::Reload),
        Just(ShutdownReason::Stop),
        Just(ShutdownReason::Unknown),
    ]
}

fn supervisor_message() -> impl Strategy<Value = SupervisorMessage> {
    let error =
        (any::<String>(), any::<i32>(), any::<String>()).prop_map(|(code, errno, message)| {
            ListenError {
                code,
                errno,
                message,
            }
        });
    prop_oneof![
        (any::<u64>(), proptest::option::of(shutdown_reason())).prop_map(
            |(deadline_ms, reason)| SupervisorMessage::Shutdown {
                deadline_ms,
                reason
            }
        ),
        (any::<u64>(), proptest::option::of(error))
            .prop_map(|(request, error)| SupervisorMessage::Listening { request, error }),
    ]
}

/// Requests without apps: an `AppSpec` has too many fields to be worth a
/// strategy here, and its fields are plain serde data.
fn request() -> impl Strategy<Value = Request> {
    let target = prop_oneof![
        Just(Target::All),
        any::<u32>().prop_map(Target::Id),
        any::<String>().prop_map(Target::Name),
        any::<String>().prop_map(Target::Regex),
        any::<String>().prop_map(|p| Target::Script(p.into())),
    ];
    let update = (
        proptest::option::of(any::<String>()),
        proptest::option::of(proptest::collection::vec(any::<String>(), 0..3)),
        proptest::option::of(proptest::collection::btree_map(
            any::<String>(),
            any::<String>(),
            0..3,
        )),
    )
        .prop_map(|(name, node_args, inherited_env)| SpecUpdate {
            name,
            node_args,
            inherited_env,
        });
    let count = prop_oneof![
        any::<u32>().prop_map(ScaleCount::To),
        any::<u32>().prop_map(ScaleCount::Add),
        any::<u32>().prop_map(ScaleCount::Remove),
    ];
    let options =
        (any::<u32>(), any::<bool>()).prop_map(|(parallel, strict_ready)| ReloadOptions {
            parallel,
            strict_ready,
        });
    let action = prop_oneof![Just(ApplyAction::Restart), Just(ApplyAction::Reload)];
    prop_oneof![
        Just(Request::Ping),
        (proptest::option::of(target.clone()), any::<bool>())
            .prop_map(|(target, pm2)| Request::List { target, pm2 }),
        Just(Request::Kill),
        any::<String>().prop_map(|exe| Request::ReExec { exe: exe.into() }),
        Just(Request::ReloadLogs),
        proptest::option::of(target.clone()).prop_map(|target| Request::Flush { target }),
        target.clone().prop_map(|target| Request::Stop { target }),
        (target.clone(), update.clone())
            .prop_map(|(target, update)| Request::Restart { target, update }),
        target.clone().prop_map(|target| Request::Delete { target }),
        target
            .clone()
            .prop_map(|target| Request::Environment { target }),
        any::<bool>().prop_map(|force| Request::Start {
            apps: Vec::new(),
            force
        }),
        (target, options.clone(), update).prop_map(|(target, options, update)| {
            Request::Reload {
                target,
                options,
                update,
            }
        }),
        (action, options).prop_map(|(action, options)| Request::Apply {
            apps: Vec::new(),
            action,
            options
        }),
        (any::<String>(), count).prop_map(|(name, count)| Request::Scale { name, count }),
        any::<bool>().prop_map(|logs| Request::Subscribe { logs }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        any::<String>().prop_map(|message| Reply::Progress { message }),
        any::<String>().prop_map(|message| Reply::Error { message }),
        (any::<u32>(), any::<String>()).prop_map(|(pid, version)| Reply::Pong { pid, version }),
        Just(Reply::Done {
            processes: Vec::new()
        }),
        Just(Reply::Subscribed),
        (any::<u32>(), any::<String>(), any::<u32>(), any::<u32>()).prop_map(
            |(pid, to, kept, started)| Reply::Updated {
                pid,
                from: "0.1.0".into(),
                to,
                kept,
                started
            }
        ),
    ]
}

/// Bus events without a process: see [`request`] on `AppSpec`.
fn bus_event() -> impl Strategy<Value = BusEvent> {
    let stream = prop_oneof![Just(LogStream::Out), Just(LogStream::Err)];
    prop_oneof![
        (
            stream,
            any::<u32>(),
            any::<String>(),
            any::<String>(),
            any::<u64>(),
            any::<String>()
        )
            .prop_map(|(stream, id, name, namespace, at_ms, data)| BusEvent::Log {
                stream,
                id,
                name,
                namespace,
                at_ms,
                data
            }),
        any::<u64>().prop_map(|count| BusEvent::Dropped { count }),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_decode_into_a_non_message(bytes in any::<Vec<u8>>()) {
        decodes_every_type_only_as_messages(&bytes)?;
    }

    #[test]
    fn random_json_decodes_only_into_messages(value in json()) {
        decodes_every_type_only_as_messages(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn worker_messages_round_trip(m in worker_message(), cut in any::<prop::sample::Index>()) {
        round_trips_and_refuses_prefixes(&m, cut)?;
    }

    #[test]
    fn supervisor_messages_round_trip(m in supervisor_message(), cut in any::<prop::sample::Index>()) {
        round_trips_and_refuses_prefixes(&m, cut)?;
    }

    #[test]
    fn requests_round_trip(m in request(), cut in any::<prop::sample::Index>()) {
        round_trips_and_refuses_prefixes(&m, cut)?;
    }

    #[test]
    fn bus_events_round_trip(m in bus_event(), cut in any::<prop::sample::Index>()) {
        round_trips_and_refuses_prefixes(&m, cut)?;
    }

    #[test]
    fn replies_round_trip(m in reply(), cut in any::<prop::sample::Index>()) {
        round_trips_and_refuses_prefixes(&m, cut)?;
    }
}
