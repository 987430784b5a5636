//! `scale`: run as many instances of one app as asked.

use super::{error, reply};
use crate::daemon::app::Op;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::{Reply, ScaleCount};

pub async fn scale(daemon: &Daemon, name: &str, count: ScaleCount) -> Reply {
    // An app's name only, as PM2's scale takes it: never a namespace.
    let Some(app) = daemon.apps.by_name(name) else {
        return error(format!("app not found: {name}"));
    };
    reply(daemon, vec![app.run(Op::Scale(count)).await])
}
