//! `reloadLogs`: every log file is opened again at its path, as after log
//! rotation; the answer comes once they all are.

use crate::daemon::lifecycle::Daemon;
use crate::daemon::log_reopen;
use rsup_proto::control::Reply;

pub async fn reload_logs(daemon: &Daemon) -> Reply {
    let writers = log_reopen::reopen_all().await;
    tracing::info!("reloadLogs: {writers} log writers opened their files again");
    Reply::Done {
        processes: super::describe(daemon, &daemon.apps.instances()),
    }
}
