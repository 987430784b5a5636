//! Reload across an app's instances: replace them a few at a time, each
//! without a gap (the per-process step is [`InstanceHandle::reload`]), and
//! stop at the first failure so that the old processes keep serving.

use super::app::Progress;
use super::instance::{AppContext, InstanceHandle};
use super::own_listeners::{own_listeners, OwnListener};
use crate::log_tail::last_lines_text;
use rsup_proto::app::{AppSpec, Status};
use rsup_proto::control::{ReloadOptions, Reply};
use std::sync::Arc;

/// New options for an instance, or `None` to keep its own.
pub type SpecOf<'a> = dyn Fn(&InstanceHandle) -> Option<Arc<AppSpec>> + Sync + 'a;

/// Replaces `handles` `options.parallel` at a time, giving each the
/// options `spec_of` has for it. Stops at the first batch with a failure: a
/// failed instance keeps its old process, and so do all not yet reached.
pub async fn replace_instances(
    context: &Arc<AppContext>,
    handles: &[InstanceHandle],
    spec_of: &SpecOf<'_>,
    options: ReloadOptions,
    progress: &Progress,
) -> Result<(), String> {
    let began = std::time::Instant::now();
    let result = replace_in_batches(context, handles, spec_of, options, progress).await;
    // Named after the reload: a reload may rename the app.
    if let Some(first) = handles.first() {
        let app = first.state().spec.name.clone();
        let at = super::now_ms();
        context
            .reloads
            .record(&app, result.is_ok(), began.elapsed(), at);
    }
    result
}

async fn replace_in_batches(
    context: &Arc<AppContext>,
    handles: &[InstanceHandle],
    spec_of: &SpecOf<'_>,
    options: ReloadOptions,
    progress: &Progress,
) -> Result<(), String> {
    let parallel = options.parallel.max(1) as usize;
    for batch in handles.chunks(parallel) {
        let mut set = tokio::task::JoinSet::new();
        for h in batch {
            let (h, spec, progress) = (h.clone(), spec_of(h), progress.clone());
            let context = context.clone();
            set.spawn(async move {
                let result = replace_one(&context, &h, spec, options, &progress).await;
                (h, result)
            });
        }
        let mut failures = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((h, Err(reason))) => failures.push(failure_report(&h, &reason)),
                // A task that panicked replaced nothing for certain.
                Err(e) => failures.push(format!("reload failed: internal error: {e}")),
            }
        }
        if !failures.is_empty() {
            return Err(failures.join("\n"));
        }
    }
    Ok(())
}

async fn replace_one(
    context: &Arc<AppContext>,
    h: &InstanceHandle,
    spec: Option<Arc<AppSpec>>,
    options: ReloadOptions,
    progress: &Progress,
) -> Result<(), String> {
    let (name, id) = (&h.identity.name, h.identity.id);
    let old_pid = h.state().pid;
    let own = match old_pid {
        Some(pid) => listeners_of(context, h, pid).await,
        None => Vec::new(),
    };
    if own.is_empty() {
        say(
            progress,
            format!("{name} (id {id}): starting a new process"),
        );
        h.reload(spec, options.strict_ready).await?;
    } else {
        let listed: Vec<String> = own.iter().map(ToString::to_string).collect();
        say(
            progress,
            format!(
                "{name} (id {id}): binds its own port ({}), which two processes cannot share; restarted instead of reloaded",
                listed.join(", ")
            ),
        );
        h.restart(spec).await;
        let status = h.state().status;
        if !matches!(status, Status::Online | Status::Launching) {
            return Err(format!(
                "the restarted process did not come back ({})",
                status.as_str()
            ));
        }
    }
    let new_pid = h.state().pid;
    say(
        progress,
        format!(
            "{name} (id {id}): replaced, pid {} -> {}",
            pid_text(old_pid),
            pid_text(new_pid)
        ),
    );
    Ok(())
}

/// The listening sockets the instance's process (its whole group with
/// treekill) opened itself rather than taking them from the daemon.
pub async fn listeners_of(context: &AppContext, h: &InstanceHandle, pid: u32) -> Vec<OwnListener> {
    let handed = context.sockets.lock().unwrap().inodes();
    let group = h.state().spec.treekill.then_some(pid);
    // A group scan reads every /proc/*/stat: off the daemon's thread.
    tokio::task::spawn_blocking(move || own_listeners(pid, group, &handed))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

fn say(progress: &Progress, message: String) {
    let _ = progress.send(Reply::Progress { message });
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "none".into(), |p| p.to_string())
}

/// Why an instance's reload failed, with the last lines it logged.
fn failure_report(h: &InstanceHandle, reason: &str) -> String {
    let id = &h.identity;
    let mut report = format!(
        "{} (id {}): reload failed: {reason}; the old process keeps serving",
        id.name, id.id
    );
    for path in [&id.err_log, &id.out_log] {
        let lines = last_lines_text(path, 10);
        if !lines.is_empty() {
            report.push_str(&format!(
                "\n--- last lines of {} ---\n{lines}",
                path.display()
            ));
        }
    }
    report
}
