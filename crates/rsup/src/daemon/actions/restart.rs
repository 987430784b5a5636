//! `restart` (all targeted instances at once), `reload` (a few at a time,
//! each replaced without a gap) and `scale`.

use super::start::start_instances;
use super::stop::shrink_to;
use super::{done, error, for_each, targeted, Progress};
use crate::daemon::instance::InstanceHandle;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::control::{ReloadOptions, Reply, Target};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

pub async fn restart(daemon: &Arc<Daemon>, target: &Target) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return error(e),
    };
    for_each(&handles, |h| async move { h.restart(None).await }).await;
    done(daemon, &handles)
}

pub async fn reload(
    daemon: &Arc<Daemon>,
    target: &Target,
    options: ReloadOptions,
    progress: &Progress,
) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return error(e),
    };
    match reload_instances(daemon, &handles, None, options, progress).await {
        Ok(()) => done(daemon, &handles),
        Err(message) => error(message),
    }
}

/// Replaces `handles` `options.parallel` at a time, giving each `spec` if
/// set. Stops at the first instance whose new process fails: that one keeps
/// its old process, and so do all not yet reached.
pub async fn reload_instances(
    daemon: &Arc<Daemon>,
    handles: &[InstanceHandle],
    spec: Option<Arc<AppSpec>>,
    options: ReloadOptions,
    progress: &Progress,
) -> Result<(), String> {
    let _guard = ReloadGuard::take(daemon, handles)?;
    let parallel = options.parallel.max(1) as usize;
    for batch in handles.chunks(parallel) {
        let mut set = tokio::task::JoinSet::new();
        for h in batch {
            let (h, spec, progress) = (h.clone(), spec.clone(), progress.clone());
            set.spawn(async move {
                let name = &h.identity.name;
                let id = h.identity.id;
                let old_pid = h.state().pid;
                let _ = progress.send(Reply::Progress {
                    message: format!("{name} (id {id}): starting a new process"),
                });
                let result = h.reload(spec, options.strict_ready).await;
                if result.is_ok() {
                    let new_pid = h.state().pid;
                    let _ = progress.send(Reply::Progress {
                        message: format!(
                            "{name} (id {id}): replaced, pid {} -> {}",
                            pid_text(old_pid),
                            pid_text(new_pid)
                        ),
                    });
                }
                (h, result)
            });
        }
        let mut failures = Vec::new();
        while let Some(Ok((h, result))) = set.join_next().await {
            if let Err(reason) = result {
                failures.push(failure_report(&h, &reason));
            }
        }
        if !failures.is_empty() {
            return Err(failures.join("\n"));
        }
    }
    Ok(())
}

/// `rsup scale`: starts instances up to `instances`, or removes those with
/// the highest instance indexes.
pub async fn scale(daemon: &Arc<Daemon>, name: &str, instances: u32) -> Reply {
    let mut handles = match targeted(daemon, &Target(name.to_string())) {
        Ok(h) if !h.is_empty() => h,
        _ => return error(format!("app not found: {name}")),
    };
    let wanted = instances as usize;
    shrink_to(daemon, &mut handles, wanted).await;
    if handles.len() < wanted {
        let mut spec = (*handles[0].state().spec).clone();
        spec.instances = instances;
        let missing = (wanted - handles.len()) as u32;
        handles.extend(start_instances(daemon, &Arc::new(spec), missing).await);
    }
    done(daemon, &handles)
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
        let lines = last_lines(path, 10);
        if !lines.is_empty() {
            report.push_str(&format!(
                "\n--- last lines of {} ---\n{lines}",
                path.display()
            ));
        }
    }
    report
}

/// The last `n` lines of a log file, reading only its end.
fn last_lines(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Marks apps as being reloaded for as long as it lives, refusing a
/// second reload of the same app: two interleaved reloads could each stop
/// a process the other just started.
struct ReloadGuard<'a> {
    daemon: &'a Daemon,
    names: BTreeSet<String>,
}

impl<'a> ReloadGuard<'a> {
    fn take(daemon: &'a Daemon, handles: &[InstanceHandle]) -> Result<Self, String> {
        let names: BTreeSet<String> = handles.iter().map(|h| h.identity.name.clone()).collect();
        let mut reloading = daemon.reloading.lock().unwrap();
        if let Some(busy) = names.iter().find(|n| reloading.contains(*n)) {
            return Err(format!(
                "a reload of {busy} is already in progress; wait for it to finish"
            ));
        }
        reloading.extend(names.iter().cloned());
        Ok(ReloadGuard { daemon, names })
    }
}

impl Drop for ReloadGuard<'_> {
    fn drop(&mut self) {
        let mut reloading = self.daemon.reloading.lock().unwrap();
        for n in &self.names {
            reloading.remove(n);
        }
    }
}
