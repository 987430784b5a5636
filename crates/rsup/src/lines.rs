//! Reading newline-framed messages with a length limit, for every channel
//! where the other side is not trusted (clients, children). The framing
//! itself, shared with the CLI and the addon, is in `rsup_proto::framing`.

pub use rsup_proto::framing::read_line_async as read_line;
