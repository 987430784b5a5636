//! What the daemon tells a client that subscribed
//! ([`crate::control::Request::Subscribe`]): one [`BusEvent`] per line,
//! carrying what PM2's bus carries (`process:event`, `log:out`, `log:err`).

use crate::app::ProcessInfo;
use serde::{Deserialize, Serialize};

/// Which output of a process a [`BusEvent::Log`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Out,
    Err,
}

/// One line of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusEvent {
    /// A step in a process's life, named as PM2 names it: `start`,
    /// `online`, `exit`, `restart`, `reload`, `stop`, `delete`,
    /// `restart overlimit`.
    Process {
        event: String,
        /// Caused by a command rather than by the process itself.
        manually: bool,
        /// When, in milliseconds since the Unix epoch.
        at_ms: u64,
        /// The process as it is right after the event.
        process: Box<ProcessInfo>,
    },
    /// Output a process wrote, as read from its pipe: one read's worth,
    /// which may hold several lines or part of one. Bytes that are not
    /// UTF-8 arrive replaced.
    Log {
        stream: LogStream,
        id: u32,
        name: String,
        namespace: String,
        at_ms: u64,
        data: String,
    },
    /// A message the process sent its parent (`process.send(m)`), as
    /// PM2's bus relays it: `{ type, data }` objects under their `type`
    /// (`process:msg`, ...), anything else as `process:msg` with `raw`.
    Message {
        id: u32,
        name: String,
        namespace: String,
        at_ms: u64,
        message: serde_json::Value,
    },
    /// This subscriber fell behind and missed this many events.
    Dropped { count: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Reply, Request};
    use crate::framing::encode;

    fn line(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// The Node package reads these lines: their shape is the contract.
    #[test]
    fn wire_format_is_stable() {
        assert_eq!(
            line(encode(&Request::Subscribe { logs: true })),
            "{\"cmd\":\"subscribe\",\"logs\":true}\n"
        );
        assert_eq!(
            line(encode(&Reply::Subscribed)),
            "{\"reply\":\"subscribed\"}\n"
        );
        let log = BusEvent::Log {
            stream: LogStream::Err,
            id: 3,
            name: "api".into(),
            namespace: "default".into(),
            at_ms: 5,
            data: "boom\n".into(),
        };
        assert_eq!(
            line(encode(&log)),
            "{\"type\":\"log\",\"stream\":\"err\",\"id\":3,\"name\":\"api\",\"namespace\":\"default\",\"at_ms\":5,\"data\":\"boom\\n\"}\n"
        );
        let message = BusEvent::Message {
            id: 3,
            name: "api".into(),
            namespace: "default".into(),
            at_ms: 5,
            message: serde_json::json!({ "type": "process:msg", "data": 1 }),
        };
        assert_eq!(
            line(encode(&message)),
            "{\"type\":\"message\",\"id\":3,\"name\":\"api\",\"namespace\":\"default\",\"at_ms\":5,\"message\":{\"type\":\"process:msg\",\"data\":1}}\n"
        );
        assert_eq!(
            line(encode(&BusEvent::Dropped { count: 7 })),
            "{\"type\":\"dropped\",\"count\":7}\n"
        );
    }
}
