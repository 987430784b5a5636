//! One app: the unit that owns its instances and its listening sockets, and
//! runs every operation on them (start, stop, restart, reload, scale,
//! remove, new options) one at a time, in the order they were asked for.
//! No two operations on an app interleave, so none can stop a process
//! another has just started; operations on different apps never wait for
//! each other. Each instance's own life (crash restarts included) is its
//! task's business, in [`super::instance`].

use super::apps::AppEnv;
use super::instance::{AppContext, Beginning, Identity, InstanceHandle};
use super::log_paths::{combined_log_path, log_paths, pid_path};
use super::reload::replace_instances;
use super::sockets::AppSockets;
use super::watch::FileWatch;
use rsup_proto::app::{AppSpec, Status};
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply, ScaleCount, SpecUpdate};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::{oneshot, watch, Notify};

/// How long `start` waits for a crash-looping instance to come online or
/// give up (`max_restarts`) before it answers anyway.
const START_SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until every instance of `outcome` has settled (see
/// [`InstanceHandle::settle`]): a process that died before it was ready is
/// restarting, and `start` answers once it is online or has failed for
/// good, so that it can say which. Done outside the app's task, so that
/// other operations on the app need not wait for it.
pub async fn settled(outcome: Outcome) -> Outcome {
    let started = outcome?;
    for h in &started {
        h.settle(START_SETTLE_LIMIT).await;
    }
    Ok(started)
}

/// Sleeps for `delay`, or forever when there is none.
async fn sleep_for(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

/// The next change the app's file watch reports, or never without one.
async fn changes(watch: &mut Option<FileWatch>) -> std::path::PathBuf {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Where an operation reports its steps as they happen.
pub type Progress = UnboundedSender<Reply>;

/// Which of an app's instances an operation concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Ids(Vec<u32>),
}

impl Selection {
    /// The chosen ones among `instances`, in their order.
    pub fn pick(&self, instances: Vec<InstanceHandle>) -> Vec<InstanceHandle> {
        match self {
            Selection::All => instances,
            Selection::Ids(ids) => instances
                .into_iter()
                .filter(|h| ids.contains(&h.identity.id))
                .collect(),
        }
    }
}

pub enum Op {
    /// Starts this many more instances with the app's options.
    Start(u32),
    /// Creates the instances a previous daemon ran (`rsup update`), each
    /// with its id, index and restart count, launched or down as it was.
    Adopt(Vec<Adoption>),
    /// Starts this many more instances with options of their own (PM2's
    /// `start -f` of a script whose name is taken).
    Add {
        spec: Arc<AppSpec>,
        count: u32,
    },
    Stop(Selection),
    /// Stops and starts the instances, all at once, each with its options
    /// changed by `update` (a new name renames every instance).
    Restart {
        selection: Selection,
        update: SpecUpdate,
    },
    /// Replaces the instances without a gap, a few at a time, with their
    /// options changed as for [`Op::Restart`].
    Reload {
        selection: Selection,
        options: ReloadOptions,
        update: SpecUpdate,
        progress: Progress,
    },
    /// Runs as many instances as asked: new ones get the lowest free
    /// indexes, and the highest indexes go first.
    Scale(ScaleCount),
    /// Stops the instances and forgets them; the app ends with its last.
    Remove(Selection),
    /// New options (from a config file): the instance count follows them,
    /// and the running instances are restarted or reloaded with them.
    Apply {
        spec: Arc<AppSpec>,
        action: ApplyAction,
        options: ReloadOptions,
        progress: Progress,
    },
}

impl Op {
    fn is_reload(&self) -> bool {
        matches!(
            self,
            Op::Reload { .. }
                | Op::Apply {
                    action: ApplyAction::Reload,
                    ..
                }
        )
    }
}

/// One instance taken over from a previous daemon.
#[derive(Debug, Clone)]
pub struct Adoption {
    pub id: u32,
    /// Its `NODE_APP_INSTANCE`.
    pub instance: u32,
    pub beginning: Beginning,
    /// PM2's `unique_id`, kept with the process it names; a new one if
    /// `None`.
    pub unique_id: Option<String>,
}

/// The instances an operation concerned, or why it failed.
pub type Outcome = Result<Vec<InstanceHandle>, String>;

struct Job {
    op: Op,
    done: oneshot::Sender<Outcome>,
}

/// How the rest of the daemon reaches an app.
#[derive(Clone)]
pub struct AppHandle {
    pub name: Arc<str>,
    /// Tells this app from an earlier one of the same name.
    pub generation: u64,
    /// What its instances share (its listening sockets among them).
    pub context: Arc<AppContext>,
    jobs: mpsc::UnboundedSender<Job>,
    instances: watch::Receiver<Vec<InstanceHandle>>,
    /// A reload is queued or running: a second one is refused rather than
    /// queued, since it would replace what the first has just started.
    reloading: Arc<AtomicBool>,
}

impl AppHandle {
    /// Starts the app's task, with no instance yet. `on_empty` runs once
    /// the app has lost its last instance, before the operation that
    /// removed it is answered.
    pub fn spawn(
        spec: AppSpec,
        env: Arc<AppEnv>,
        generation: u64,
        on_empty: impl FnOnce(&str) + Send + 'static,
    ) -> AppHandle {
        let name: Arc<str> = spec.name.as_str().into();
        let (jobs, rx) = mpsc::unbounded_channel();
        let (published, instances) = watch::channel(Vec::new());
        let reloading = Arc::new(AtomicBool::new(false));
        let context = Arc::new(AppContext {
            sockets: Mutex::new(AppSockets::new(
                env.sockets.clone(),
                env.changed.clone(),
                env.keeper.clone().map(|k| (k, format!("sockets/{name}"))),
            )),
            changed: env.changed.clone(),
            instance_changed: Notify::new(),
            preload: env.preload.clone(),
            retiring: env.retiring.subscribe(),
            events: env.events.clone(),
            reloads: env.reloads.clone(),
            freeze: env.freeze.clone(),
            launcher: env.launcher.clone(),
            keeper: env.keeper.clone(),
            _kept_spec: env.keeper.as_ref().map(|keeper| {
                let key = format!("{}{name}", super::adopt::APPS);
                let meta = serde_json::to_value(&spec).unwrap_or_default();
                keeper.keep(key.clone(), None, meta, &[]);
                super::keeper_link::KeptEntry::new(keeper, key)
            }),
        });
        let app = App {
            spec: Arc::new(spec),
            context: context.clone(),
            env,
            instances: BTreeMap::new(),
            published,
            reloading: reloading.clone(),
        };
        tokio::spawn(app.run(rx, on_empty));
        AppHandle {
            name,
            generation,
            context,
            jobs,
            instances,
            reloading,
        }
    }

    /// The app's instances now, by id; cheap, and never waits for an
    /// operation.
    /// Whether a reload (asked for, or the app's own) is queued or runs.
    pub fn is_reloading(&self) -> bool {
        self.reloading.load(Ordering::SeqCst)
    }

    pub fn instances(&self) -> Vec<InstanceHandle> {
        self.instances.borrow().clone()
    }

    /// The same app under another name (see [`super::apps::Apps::rename`]).
    pub fn renamed(&self, name: &str) -> AppHandle {
        AppHandle {
            name: name.into(),
            ..self.clone()
        }
    }

    /// Queues `op` and returns once the app has done it.
    pub async fn run(&self, op: Op) -> Outcome {
        let reload = op.is_reload();
        if reload && self.reloading.swap(true, Ordering::SeqCst) {
            return Err(format!(
                "a reload of {} is already in progress; wait for it to finish",
                self.name
            ));
        }
        let (done, rx) = oneshot::channel();
        if self.jobs.send(Job { op, done }).is_err() {
            return Err(self.gone());
        }
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    fn gone(&self) -> String {
        format!("app {} was deleted", self.name)
    }
}

struct App {
    /// Options for new instances; each instance keeps its own copy, which
    /// changes only when it is restarted or reloaded with new options.
    spec: Arc<AppSpec>,
    context: Arc<AppContext>,
    env: Arc<AppEnv>,
    instances: BTreeMap<u32, InstanceHandle>,
    published: watch::Sender<Vec<InstanceHandle>>,
    reloading: Arc<AtomicBool>,
}

impl App {
    async fn run(
        mut self,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        on_empty: impl FnOnce(&str) + Send,
    ) {
        let mut started = false;
        let mut watch = FileWatch::start(&self.spec, &self.env.home.dir);
        loop {
            let next_cron =
                self.spec.cron_restart.as_deref().and_then(|pattern| {
                    crate::cron_pattern::next_delay(pattern, chrono::Local::now())
                });
            let Job { op, done } = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => job,
                    // Every handle is gone: the daemon itself is ending.
                    None => return,
                },
                _ = self.context.instance_changed.notified() => {
                    self.close_sockets_if_down();
                    continue;
                }
                () = sleep_for(next_cron) => {
                    self.scheduled_reload("cron_restart").await;
                    continue;
                }
                changed = changes(&mut watch) => {
                    self.scheduled_reload(&format!("watch: {} changed", changed.display())).await;
                    continue;
                }
            };
            let applies = matches!(op, Op::Apply { .. });
            let reload = op.is_reload();
            let outcome = self.perform(op).await;
            if reload {
                self.reloading.store(false, Ordering::SeqCst);
            }
            self.publish();
            started |= !self.instances.is_empty();
            if started && self.instances.is_empty() {
                // Gone before anyone hears so: a start of the same name
                // right after the answer must find the name free.
                self.context.sockets.lock().unwrap().release();
                on_empty(&self.spec.name);
                let _ = done.send(outcome);
                tracing::info!(app = %self.spec.name, "app removed");
                return;
            }
            self.close_sockets_if_down();
            let _ = done.send(outcome);
            if applies {
                // New options may watch other paths, or none.
                watch = FileWatch::start(&self.spec, &self.env.home.dir);
            }
        }
    }

    /// With no process running or about to run (every instance stopped or
    /// errored), the app's ports close: a client is refused at once, and a
    /// health check sees the app down, instead of waiting in a queue no one
    /// reads. The next process to listen binds them again. Crash restarts
    /// and reloads never get here, so their queue stays open.
    fn close_sockets_if_down(&self) {
        let down = !self.instances.is_empty()
            && self
                .instances
                .values()
                .all(|h| matches!(h.state().status, Status::Stopped | Status::Errored));
        if down && self.context.sockets.lock().unwrap().release() {
            tracing::info!(app = %self.spec.name, "nothing runs: listening sockets closed");
        }
    }

    /// A reload the app's own options ask for (`cron_restart`), done like
    /// `rsup reload`: no request is dropped. An app with nothing online (all
    /// stopped, say) is left alone, and a reload asked for meanwhile is
    /// refused as during any reload.
    async fn scheduled_reload(&mut self, why: &str) {
        // Not while the daemon prepares to re-execute itself: the next
        // image reloads on its own schedule.
        if *self.env.retiring.borrow() {
            return;
        }
        let chosen = self.chosen(&Selection::All);
        if !chosen.iter().any(|h| h.state().status == Status::Online) {
            return;
        }
        if self.reloading.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(app = %self.spec.name, "{why}: reloading");
        let (progress, _unheard) = mpsc::unbounded_channel();
        let options = ReloadOptions::default();
        if let Err(e) =
            replace_instances(&self.context, &chosen, &|_| None, options, &progress).await
        {
            tracing::warn!(app = %self.spec.name, "{why}: reload failed: {e}");
        }
        self.reloading.store(false, Ordering::SeqCst);
        self.publish();
    }

    fn publish(&self) {
        let all: Vec<InstanceHandle> = self.instances.values().cloned().collect();
        self.published.send_replace(all);
        self.env.changed.notify_one();
    }

    fn chosen(&self, selection: &Selection) -> Vec<InstanceHandle> {
        selection.pick(self.instances.values().cloned().collect())
    }

    /// The instances a restart or reload with `update` concerns: a new
    /// name is the whole app's, so it reaches every instance. The app's own
    /// options take the update too, for instances started later.
    fn chosen_for_update(
        &mut self,
        selection: &Selection,
        update: &SpecUpdate,
    ) -> Vec<InstanceHandle> {
        if update.is_empty() {
            return self.chosen(selection);
        }
        self.spec = Arc::new(update.apply(&self.spec));
        if update.name.is_some() {
            self.chosen(&Selection::All)
        } else {
            self.chosen(selection)
        }
    }

    async fn perform(&mut self, op: Op) -> Outcome {
        match op {
            Op::Start(count) => Ok(self.start_instances(self.spec.clone(), count).await),
            Op::Add { spec, count } => {
                self.env.check_instances(&spec, count)?;
                Ok(self.start_instances(spec, count).await)
            }
            Op::Adopt(adoptions) => Ok(self.adopt(adoptions).await),
            Op::Stop(selection) => {
                let chosen = self.chosen(&selection);
                for_each(&chosen, |h| async move { h.stop().await }).await;
                Ok(chosen)
            }
            Op::Restart { selection, update } => {
                let chosen = self.chosen_for_update(&selection, &update);
                let updated = Updated::new(&update);
                for_each(&chosen, |h| {
                    let spec = updated.of(&h);
                    async move { h.restart(spec).await }
                })
                .await;
                Ok(chosen)
            }
            Op::Reload {
                selection,
                options,
                update,
                progress,
            } => {
                let chosen = self.chosen_for_update(&selection, &update);
                let updated = Updated::new(&update);
                let spec_of = |h: &InstanceHandle| updated.of(h);
                replace_instances(&self.context, &chosen, &spec_of, options, &progress).await?;
                Ok(chosen)
            }
            Op::Scale(count) => {
                let count = count.apply(self.instances.len() as u32);
                self.env.check_instances(&self.spec, count)?;
                self.scale(count).await;
                Ok(self.instances.values().cloned().collect())
            }
            Op::Remove(selection) => {
                let chosen = self.chosen(&selection);
                self.remove(&chosen).await;
                Ok(chosen)
            }
            Op::Apply {
                spec,
                action,
                options,
                progress,
            } => self.apply(spec, action, options, &progress).await,
        }
    }

    /// Adds `count` instances with `spec` and returns them once each is
    /// ready or has failed. They are listed from the moment they launch.
    async fn start_instances(&mut self, spec: Arc<AppSpec>, count: u32) -> Vec<InstanceHandle> {
        let mut started = Vec::new();
        let mut settled = Vec::new();
        for _ in 0..count {
            let identity = self.new_identity(&spec);
            let (handle, ready) =
                InstanceHandle::start(identity, spec.clone(), self.context.clone());
            self.instances.insert(handle.identity.id, handle.clone());
            started.push(handle);
            settled.push(ready);
        }
        self.publish();
        for ready in settled {
            let _ = ready.await;
        }
        started
    }

    /// Creates the instances a previous daemon ran and returns them once
    /// each is ready, has failed, or is down as it was. An id the app
    /// already has is skipped.
    async fn adopt(&mut self, adoptions: Vec<Adoption>) -> Vec<InstanceHandle> {
        let mut adopted = Vec::new();
        let mut settled = Vec::new();
        for a in adoptions {
            if self.instances.contains_key(&a.id) {
                continue;
            }
            let mut identity = self.identity(&self.spec, a.id, a.instance);
            if let Some(unique_id) = a.unique_id {
                identity.unique_id = unique_id;
            }
            let (handle, ready) = InstanceHandle::start_as(
                identity,
                self.spec.clone(),
                self.context.clone(),
                a.beginning,
            );
            self.instances.insert(a.id, handle.clone());
            adopted.push(handle);
            settled.push(ready);
        }
        self.publish();
        for ready in settled {
            let _ = ready.await;
        }
        adopted
    }

    /// A new id and the lowest instance index no instance of the app has.
    fn new_identity(&self, spec: &AppSpec) -> Identity {
        let id = self.env.next_id();
        let taken: Vec<u32> = self
            .instances
            .values()
            .map(|h| h.identity.instance)
            .collect();
        let instance = (0..).find(|i| !taken.contains(i)).unwrap_or(0);
        self.identity(spec, id, instance)
    }

    fn identity(&self, spec: &AppSpec, id: u32, instance: u32) -> Identity {
        let (out_log, err_log) = log_paths(spec, id, &self.env.home);
        Identity {
            id,
            name: spec.name.clone(),
            instance,
            out_log,
            err_log,
            combined_log: combined_log_path(spec, id),
            pid_file: pid_path(spec, id, &self.env.home),
            created_at_ms: crate::daemon::now_ms(),
            unique_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn scale(&mut self, count: u32) {
        if count as usize != self.instances.len() {
            let mut spec = (*self.spec).clone();
            spec.instances = count;
            self.spec = Arc::new(spec);
        }
        self.shrink_to(count as usize).await;
        let missing = (count as usize).saturating_sub(self.instances.len());
        self.start_instances(self.spec.clone(), missing as u32)
            .await;
    }

    /// Removes the instances with the highest indexes beyond `wanted`.
    async fn shrink_to(&mut self, wanted: usize) {
        let mut by_index: Vec<InstanceHandle> = self.instances.values().cloned().collect();
        by_index.sort_by_key(|h| h.identity.instance);
        if by_index.len() > wanted {
            let extra = by_index.split_off(wanted);
            if wanted == 0 {
                self.remove(&extra).await;
            } else {
                // The app serves on: their clients are asked to come back.
                for_each(&extra, |h| async move { h.remove_one_of_many().await }).await;
                for h in &extra {
                    self.instances.remove(&h.identity.id);
                }
            }
        }
    }

    async fn remove(&mut self, chosen: &[InstanceHandle]) {
        for_each(chosen, |h| async move { h.remove().await }).await;
        for h in chosen {
            self.instances.remove(&h.identity.id);
        }
    }

    async fn apply(
        &mut self,
        spec: Arc<AppSpec>,
        action: ApplyAction,
        options: ReloadOptions,
        progress: &Progress,
    ) -> Outcome {
        self.env.check_instances(&spec, spec.instances)?;
        let wanted = spec.instances as usize;
        self.shrink_to(wanted).await;
        let running: Vec<InstanceHandle> = self.instances.values().cloned().collect();
        match action {
            ApplyAction::Restart => {
                let new = spec.clone();
                for_each(&running, move |h| {
                    let new = new.clone();
                    async move { h.restart(Some(new)).await }
                })
                .await;
            }
            ApplyAction::Reload => {
                let spec_of = |_: &InstanceHandle| Some(spec.clone());
                replace_instances(&self.context, &running, &spec_of, options, progress).await?
            }
        }
        self.spec = spec.clone();
        let missing = wanted.saturating_sub(self.instances.len());
        self.start_instances(spec, missing as u32).await;
        Ok(self.instances.values().cloned().collect())
    }
}

/// The instances' own options with an update.
struct Updated<'a> {
    update: &'a SpecUpdate,
    /// Each spec updated so far, and what it became: the instances that
    /// shared one share the new one (and what is kept per spec, such as
    /// `jlist`'s text).
    done: Mutex<Vec<(Arc<AppSpec>, Arc<AppSpec>)>>,
}

impl<'a> Updated<'a> {
    fn new(update: &'a SpecUpdate) -> Updated<'a> {
        Updated {
            update,
            done: Mutex::default(),
        }
    }

    /// The instance's own options with the update, or `None` (keep them)
    /// when there is nothing to change.
    fn of(&self, h: &InstanceHandle) -> Option<Arc<AppSpec>> {
        if self.update.is_empty() {
            return None;
        }
        let old = h.state().spec;
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, new)) = done.iter().find(|(o, _)| Arc::ptr_eq(o, &old)) {
            return Some(new.clone());
        }
        let new = Arc::new(self.update.apply(&old));
        done.push((old, new.clone()));
        Some(new)
    }
}

/// Runs `f` on every handle at once and waits for all of them.
async fn for_each<F, Fut>(handles: &[InstanceHandle], f: F)
where
    F: Fn(InstanceHandle) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for h in handles {
        set.spawn(f(h.clone()));
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
