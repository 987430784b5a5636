//! `scale`: run as many instances of one app as asked.

use super::{error, reply};
use crate::daemon::app::Op;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::{Reply, ScaleCount, Target};

pub async fn scale(daemon: &Daemon, name: &str, count: ScaleCount) -> Reply {
    let app = match daemon.apps.resolve(&Target::Name(name.to_string())) {
        Ok(chosen) if chosen.len() == 1 => chosen[0].0.clone(),
        _ => return error(format!("app not found: {name}")),
    };
    reply(daemon, vec![app.run(Op::Scale(count)).await])
}
