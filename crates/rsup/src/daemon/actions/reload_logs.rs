//! `reloadLogs`: every log file is opened again at its path, as after log
//! rotation; the answer comes once they all are. The global rotation
//! settings are read again first (`rsup set pm2-logrotate:…` asks this).

use crate::daemon::lifecycle::Daemon;
use crate::daemon::{log_reopen, log_rotate};
use rsup_proto::control::Reply;

pub async fn reload_logs(daemon: &Daemon) -> Reply {
    log_rotate::load_global(&daemon.apps.env.home);
    let writers = log_reopen::reopen_all().await;
    tracing::info!("reloadLogs: {writers} log writers opened their files again");
    Reply::Done {
        processes: super::describe(daemon, &daemon.apps.instances()),
    }
}
