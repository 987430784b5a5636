//! The daemon's apps by name, and the one place where a [`Target`] becomes
//! the apps and instances it names. A name is taken the moment its app is
//! created, under one lock, so two requests can never create two apps with
//! one name.

use super::app::{AppHandle, Selection};
use super::events::Events;
use super::freeze::Gate;
use super::instance::InstanceHandle;
use super::keeper_link::KeeperLink;
use super::launcher::{Launcher, OsLauncher};
use super::preload::Preload;
use super::reload_record::ReloadRecord;
use super::sockets::SocketTable;
use crate::home::Home;
use rsup_proto::app::{AppSpec, Status};
use rsup_proto::control::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};

/// What every app needs from the daemon.
pub struct AppEnv {
    pub home: Home,
    /// rsup's Node preload, given to Node apps with `-r`.
    pub preload: Option<PathBuf>,
    /// Why Node apps cannot take the daemon's sockets, when they cannot.
    pub preload_problem: Option<String>,
    /// The next `pm_id`: unique among the daemon's processes; back to 0
    /// once none is left.
    next_id: AtomicU32,
    /// Told of every change worth writing to the state file.
    pub changed: Arc<Notify>,
    /// The listening sockets of every app, so that apps can share one.
    pub sockets: Arc<SocketTable>,
    /// Where instances publish their steps and output for subscribers.
    pub events: Arc<Events>,
    /// Set while the daemon prepares to re-execute itself (`rsup update`):
    /// it takes no request and restarts no crashed process.
    pub retiring: watch::Sender<bool>,
    /// What every app's reloads came to (for `/metrics`).
    pub reloads: Arc<ReloadRecord>,
    /// How processes are started: the real ones, but for unit tests.
    pub launcher: Arc<dyn Launcher>,
    /// Pauses the readers of every process's output and channels before
    /// the daemon re-executes itself (`rsup update`).
    pub freeze: Arc<Gate>,
    /// The daemon's keeper, which holds what a crash must not close.
    pub keeper: Option<Arc<KeeperLink>>,
}

impl AppEnv {
    pub fn new(home: Home, preload: Preload) -> AppEnv {
        AppEnv {
            home,
            preload: preload.path,
            preload_problem: preload.problem,
            next_id: AtomicU32::new(0),
            changed: Arc::new(Notify::new()),
            sockets: Arc::default(),
            retiring: watch::Sender::new(false),
            events: Arc::new(Events::default()),
            reloads: Arc::default(),
            freeze: Arc::default(),
            launcher: Arc::new(OsLauncher),
            keeper: None,
        }
    }

    /// Several instances of a Node app share their ports through the
    /// preload; without it the second would crash-loop on EADDRINUSE, so
    /// they are refused up front.
    pub fn check_instances(&self, spec: &AppSpec, count: u32) -> Result<(), String> {
        match &self.preload_problem {
            Some(problem) if spec.node && count > 1 => Err(format!(
                "app \"{}\": {count} instances of a Node app share their port through rsup's preload, and {problem}",
                spec.name
            )),
            _ => Ok(()),
        }
    }

    pub fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Ids continue after those a previous daemon gave out.
    pub fn ids_from(&self, next: u32) {
        self.next_id.fetch_max(next, Ordering::Relaxed);
    }

    pub fn peek_next_id(&self) -> u32 {
        self.next_id.load(Ordering::Relaxed)
    }
}

pub struct Apps {
    pub env: Arc<AppEnv>,
    by_name: Mutex<BTreeMap<String, AppHandle>>,
    next_generation: AtomicU64,
}

impl Apps {
    pub fn new(env: AppEnv) -> Arc<Apps> {
        Arc::new(Apps {
            env: Arc::new(env),
            by_name: Mutex::new(BTreeMap::new()),
            next_generation: AtomicU64::new(0),
        })
    }

    /// Creates every app, or none if any name is taken (or given twice).
    /// The apps have no instance yet.
    pub fn create(self: &Arc<Self>, specs: Vec<AppSpec>) -> Result<Vec<AppHandle>, String> {
        let mut by_name = self.by_name.lock().unwrap();
        for (i, spec) in specs.iter().enumerate() {
            check_name(&spec.name)?;
            self.env.check_instances(spec, spec.instances)?;
            if by_name.contains_key(&spec.name) {
                return Err(format!(
                    "app \"{}\" is already running; use restart, reload or delete",
                    spec.name
                ));
            }
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(format!("app \"{}\" is given twice", spec.name));
            }
        }
        Ok(specs
            .into_iter()
            .map(|spec| {
                let handle = self.spawn(spec);
                by_name.insert(handle.name.to_string(), handle.clone());
                handle
            })
            .collect())
    }

    /// What `start` does with each app (see [`rsup_proto::control::Request::Start`]):
    /// apps of free names are created (with no instance); for a taken name,
    /// the app that has it, to restart or, with `force`, to add to. All or
    /// nothing: when any is refused, none is created.
    pub fn claim(
        self: &Arc<Self>,
        specs: Vec<AppSpec>,
        force: bool,
    ) -> Result<Vec<(AppSpec, Claim)>, String> {
        let mut by_name = self.by_name.lock().unwrap();
        let mut fresh = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            check_name(&spec.name)?;
            self.env.check_instances(spec, spec.instances)?;
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(format!("app \"{}\" is given twice", spec.name));
            }
            match by_name.get(&spec.name) {
                None => fresh.push(i),
                Some(app) if !force => check_startable_again(app, spec)?,
                Some(_) => {}
            }
        }
        Ok(specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let claim = if fresh.contains(&i) {
                    let handle = self.spawn(spec.clone());
                    by_name.insert(spec.name.clone(), handle.clone());
                    Claim::Created(handle)
                } else if force {
                    Claim::AddTo(by_name[&spec.name].clone())
                } else {
                    Claim::StartAgain(by_name[&spec.name].clone())
                };
                (spec, claim)
            })
            .collect())
    }

    /// Gives `app` the name `new` at once, so that no other app can take
    /// it meanwhile; refused when another app has it.
    pub fn rename(&self, app: &AppHandle, new: &str) -> Result<AppHandle, String> {
        check_name(new)?;
        let mut by_name = self.by_name.lock().unwrap();
        if let Some(other) = by_name.get(new) {
            if other.generation == app.generation {
                return Ok(other.clone());
            }
            return Err(format!(
                "cannot rename {} to {new:?}: an app of that name exists",
                app.name
            ));
        }
        let old = by_name
            .iter()
            .find(|(_, a)| a.generation == app.generation)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| format!("app {} was deleted", app.name))?;
        let handle = by_name.remove(&old).expect("found just now");
        let renamed = handle.renamed(new);
        by_name.insert(new.to_string(), renamed.clone());
        Ok(renamed)
    }

    /// The app of each spec's name, created (with no instance) if there is
    /// none, `true` when it was; all names are taken at once, or none when
    /// one is refused.
    pub fn get_or_create_all(
        self: &Arc<Self>,
        specs: &[AppSpec],
    ) -> Result<Vec<(AppHandle, bool)>, String> {
        let mut by_name = self.by_name.lock().unwrap();
        for (i, spec) in specs.iter().enumerate() {
            if !by_name.contains_key(&spec.name) {
                check_name(&spec.name)?;
            }
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(format!("app \"{}\" is given twice", spec.name));
            }
        }
        Ok(specs
            .iter()
            .map(|spec| match by_name.get(&spec.name) {
                Some(app) => (app.clone(), false),
                None => {
                    let handle = self.spawn(spec.clone());
                    by_name.insert(spec.name.clone(), handle.clone());
                    (handle, true)
                }
            })
            .collect())
    }

    fn spawn(self: &Arc<Self>, spec: AppSpec) -> AppHandle {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let apps = Arc::downgrade(self);
        AppHandle::spawn(spec, self.env.clone(), generation, move |_: &str| {
            if let Some(apps) = apps.upgrade() {
                apps.forget(generation);
            }
        })
    }

    /// Called by an app that has no instance left: its name is free again.
    /// Found by generation, since the app may have been renamed since it
    /// last knew its name. When no app is left, ids start again at 0, as
    /// PM2's do (scripts run `delete all`, then act on id 0).
    fn forget(&self, generation: u64) {
        let mut by_name = self.by_name.lock().unwrap();
        by_name.retain(|_, a| a.generation != generation);
        if by_name.is_empty() {
            self.env.next_id.store(0, Ordering::Relaxed);
        }
    }

    pub fn all(&self) -> Vec<AppHandle> {
        self.by_name.lock().unwrap().values().cloned().collect()
    }

    /// Every instance of every app, by id.
    pub fn instances(&self) -> Vec<InstanceHandle> {
        let mut all: Vec<InstanceHandle> = self.all().iter().flat_map(|a| a.instances()).collect();
        all.sort_by_key(|h| h.identity.id);
        all
    }

    /// The app of this name, not a namespace.
    pub fn by_name(&self, name: &str) -> Option<AppHandle> {
        self.by_name.lock().unwrap().get(name).cloned()
    }

    /// The apps a target names, each with the instances it names. A name
    /// is an app's, else a namespace's (PM2's order); a number is an id,
    /// else a name. A target that names nothing is an error, except `all`.
    pub fn resolve(&self, target: &Target) -> Result<Vec<(AppHandle, Selection)>, String> {
        let apps = self.all();
        let found: Vec<(AppHandle, Selection)> = match target {
            Target::All => apps.into_iter().map(|a| (a, Selection::All)).collect(),
            Target::Id(id) => {
                let by_id = apps
                    .iter()
                    .find(|a| a.instances().iter().any(|h| h.identity.id == *id));
                match by_id {
                    Some(app) => vec![(app.clone(), Selection::Ids(vec![*id]))],
                    // PM2 reads a number as an id; an app or a namespace
                    // named so is the only other thing it can mean.
                    None => named(apps, &id.to_string()),
                }
            }
            Target::Name(name) => named(apps, name),
            Target::Script(path) => apps
                .into_iter()
                .filter_map(|a| {
                    let ids: Vec<u32> = a
                        .instances()
                        .iter()
                        .filter(|h| Path::new(&h.state().spec.script) == path)
                        .map(|h| h.identity.id)
                        .collect();
                    (!ids.is_empty()).then_some((a, Selection::Ids(ids)))
                })
                .collect(),
            Target::Regex(pattern) => {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("invalid pattern /{pattern}/: {e}"))?;
                apps.into_iter()
                    .filter(|a| re.is_match(&a.name))
                    .map(|a| (a, Selection::All))
                    .collect()
            }
        };
        if found.is_empty() && *target != Target::All {
            return Err(format!("process, app or namespace not found: {target}"));
        }
        Ok(found)
    }

    /// The instances a target names, by id.
    pub fn resolve_instances(&self, target: &Target) -> Result<Vec<InstanceHandle>, String> {
        let mut chosen: Vec<InstanceHandle> = self
            .resolve(target)?
            .iter()
            .flat_map(|(app, selection)| selection.pick(app.instances()))
            .collect();
        chosen.sort_by_key(|h| h.identity.id);
        Ok(chosen)
    }
}

/// What `start` does with an app whose name it was given.
pub enum Claim {
    /// A new app, with no instance yet.
    Created(AppHandle),
    /// The stopped app of that name and script: start it again.
    StartAgain(AppHandle),
    /// The app of that name, to which the new instances are added.
    AddTo(AppHandle),
}

/// `start` of a name that is taken, without `-f`: allowed when the app runs
/// this script and none of its processes run (PM2 then starts it again);
/// otherwise the one-line reason why not.
fn check_startable_again(app: &AppHandle, spec: &AppSpec) -> Result<(), String> {
    let instances = app.instances();
    let name = &spec.name;
    let Some(first) = instances.first() else {
        return Err(format!(
            "app \"{name}\" is already running (it is being started); wait for it, or choose another --name"
        ));
    };
    if !instances
        .iter()
        .any(|h| h.state().spec.script == spec.script)
    {
        return Err(format!(
            "app \"{name}\" is already running (script {}); choose another --name, or add -f to add these processes to it",
            first.state().spec.script
        ));
    }
    let down = instances.iter().all(|h| {
        matches!(
            h.state().status,
            Status::Stopped | Status::Stopping | Status::Errored
        )
    });
    if !down {
        return Err(format!(
            "app \"{name}\" is already running {}; add -f to start another process of it, or use restart or reload",
            spec.script
        ));
    }
    Ok(())
}

/// The CLI checks names when it reads them; a client of the daemon's own
/// user that skips the CLI is held to the same rule.
fn check_name(name: &str) -> Result<(), String> {
    crate::config::name::check(name)
        .map_err(|e| format!("app {}: {e}", crate::config::name::shown(name)))
}

/// The app called `name`, else every instance whose namespace is `name`.
fn named(apps: Vec<AppHandle>, name: &str) -> Vec<(AppHandle, Selection)> {
    if let Some(app) = apps.iter().find(|a| &*a.name == name) {
        return vec![(app.clone(), Selection::All)];
    }
    apps.into_iter()
        .filter_map(|a| {
            let instances = a.instances();
            let ids: Vec<u32> = instances
                .iter()
                .filter(|h| h.state().spec.namespace == name)
                .map(|h| h.identity.id)
                .collect();
            let selection = if ids.len() == instances.len() {
                Selection::All
            } else {
                Selection::Ids(ids.clone())
            };
            (!ids.is_empty()).then_some((a, selection))
        })
        .collect()
}

/// The app and instance logic in-process, with real (tiny) processes: no
/// CLI, no control socket.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::app::Op;
    use rsup_proto::app::Status;
    use rsup_proto::control::{ScaleCount, SpecUpdate};

    /// Stops every app's sleepers, so no test leaves processes behind.
    async fn remove_all(apps: &Apps) {
        for app in apps.all() {
            app.run(Op::Remove(Selection::All)).await.unwrap();
        }
    }

    fn apps(home: &tempfile::TempDir) -> Arc<Apps> {
        Apps::new(AppEnv::new(
            Home {
                dir: home.path().to_path_buf(),
            },
            Preload {
                path: None,
                problem: None,
            },
        ))
    }

    use crate::test_support::sleeper;

    fn pids(app: &AppHandle) -> Vec<u32> {
        app.instances()
            .iter()
            .filter_map(|h| h.state().pid)
            .collect()
    }

    fn alive(pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
        matches!(state, Some(s) if s != 'Z')
    }

    #[tokio::test]
    async fn names_are_taken_all_or_nothing() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        apps.create(vec![sleeper("a", 1)]).unwrap();
        let err = apps
            .create(vec![sleeper("b", 1), sleeper("a", 1)])
            .err()
            .unwrap();
        assert!(err.contains("\"a\" is already running"), "{err}");
        let err = apps
            .create(vec![sleeper("c", 1), sleeper("c", 1)])
            .err()
            .unwrap();
        assert!(err.contains("\"c\" is given twice"), "{err}");
        // A client that skips the CLI is held to its name rules.
        let err = apps.create(vec![sleeper("../x", 1)]).err().unwrap();
        assert!(err.contains("must not contain \"/\""), "{err}");
        assert!(apps.get_or_create_all(&[sleeper("all", 1)]).is_err());
        let names: Vec<String> = apps.all().iter().map(|a| a.name.to_string()).collect();
        assert_eq!(names, ["a"]);
    }

    #[tokio::test]
    async fn targets_name_apps_and_instances() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let created = apps
            .create(vec![
                sleeper("api-1", 2),
                sleeper("web", 1),
                sleeper("5", 1),
            ])
            .unwrap();
        for (app, count) in created.iter().zip([2, 1, 1]) {
            app.run(Op::Start(count)).await.unwrap();
        }
        // ids: api-1 0 and 1, web 2, "5" 3.
        let ids = |t: &str| -> Result<Vec<u32>, String> {
            Ok(apps
                .resolve_instances(&Target::parse(t))?
                .iter()
                .map(|h| h.identity.id)
                .collect())
        };
        assert_eq!(ids("all").unwrap(), [0, 1, 2, 3]);
        assert_eq!(ids("1").unwrap(), [1]);
        assert_eq!(ids("web").unwrap(), [2]);
        assert_eq!(ids("/^api-/").unwrap(), [0, 1]);
        // No process has id 5: the app named "5".
        assert_eq!(ids("5").unwrap(), [3]);
        assert!(ids("nope").unwrap_err().contains("not found: nope"));
        assert!(ids("/(/").unwrap_err().contains("invalid pattern"));
        remove_all(&apps).await;
    }

    #[tokio::test]
    async fn a_name_is_an_apps_before_a_namespaces() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let in_ns = |name: &str, ns: &str| {
            let mut spec = sleeper(name, 1);
            spec.namespace = ns.into();
            spec
        };
        let created = apps
            .create(vec![
                in_ns("a", "batch"),
                in_ns("b", "batch"),
                in_ns("jobs", "web"),
                in_ns("c", "7"),
                in_ns("d", "jobs"),
            ])
            .unwrap();
        for app in &created {
            app.run(Op::Start(1)).await.unwrap();
        }
        // ids: a 0, b 1, jobs 2, c 3, d 4.
        let ids = |t: &str| -> Result<Vec<u32>, String> {
            Ok(apps
                .resolve_instances(&Target::parse(t))?
                .iter()
                .map(|h| h.identity.id)
                .collect())
        };
        assert_eq!(ids("batch").unwrap(), [0, 1]);
        // "jobs" is both an app and a namespace: the app, as in PM2.
        assert_eq!(ids("jobs").unwrap(), [2]);
        assert_eq!(ids("web").unwrap(), [2]);
        // A number: an id, else a name, else a namespace.
        assert_eq!(ids("3").unwrap(), [3]);
        assert_eq!(ids("7").unwrap(), [3]);
        assert!(ids("nope").unwrap_err().contains("namespace not found"));
        // scale takes an app's name only.
        assert!(apps.by_name("web").is_none());
        assert!(apps.by_name("jobs").is_some());
        remove_all(&apps).await;
    }

    #[tokio::test]
    async fn a_script_names_the_processes_that_run_it() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let mut other = sleeper("b", 1);
        other.script = "/bin/sleep".into();
        let created = apps.create(vec![sleeper("a", 2), other]).unwrap();
        for (app, count) in created.iter().zip([2, 1]) {
            app.run(Op::Start(count)).await.unwrap();
        }
        let ids = |script: &str| -> Result<Vec<u32>, String> {
            Ok(apps
                .resolve_instances(&Target::Script(script.into()))?
                .iter()
                .map(|h| h.identity.id)
                .collect())
        };
        assert_eq!(ids("sleep").unwrap(), [0, 1]);
        assert_eq!(ids("/bin/sleep").unwrap(), [2]);
        assert!(ids("/srv/none.js").unwrap_err().contains("not found"));
        remove_all(&apps).await;
    }

    #[tokio::test]
    async fn a_taken_name_starts_again_when_down_takes_more_with_force_or_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let app = apps.create(vec![sleeper("s", 1)]).unwrap().remove(0);
        app.run(Op::Start(1)).await.unwrap();

        let err = apps.claim(vec![sleeper("s", 1)], false).err().unwrap();
        assert!(
            err.contains("\"s\" is already running sleep; add -f"),
            "{err}"
        );
        let mut elsewhere = sleeper("s", 1);
        elsewhere.script = "/bin/sleep".into();
        let err = apps.claim(vec![elsewhere.clone()], false).err().unwrap();
        assert!(err.contains("(script sleep)"), "{err}");
        // All or nothing: the free name was not taken either.
        let err = apps
            .claim(vec![sleeper("fresh", 1), sleeper("s", 1)], false)
            .err()
            .unwrap();
        assert!(err.contains("\"s\""), "{err}");
        assert_eq!(apps.all().len(), 1);

        app.run(Op::Stop(Selection::All)).await.unwrap();
        let claimed = apps.claim(vec![sleeper("s", 1)], false).unwrap();
        assert!(matches!(claimed[0].1, Claim::StartAgain(_)));

        let claimed = apps.claim(vec![elsewhere.clone()], true).unwrap();
        let Claim::AddTo(same) = &claimed[0].1 else {
            panic!("-f adds to the app of that name")
        };
        let added = same
            .run(Op::Add {
                spec: Arc::new(elsewhere),
                count: 1,
            })
            .await
            .unwrap();
        assert_eq!(added[0].state().spec.script, "/bin/sleep");
        let scripts: Vec<String> = app
            .instances()
            .iter()
            .map(|h| h.state().spec.script.clone())
            .collect();
        assert_eq!(scripts, ["sleep", "/bin/sleep"]);
        app.run(Op::Remove(Selection::All)).await.unwrap();
    }

    #[tokio::test]
    async fn a_rename_moves_the_name_and_ids_start_over_once_no_app_is_left() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let created = apps
            .create(vec![sleeper("old", 1), sleeper("other", 1)])
            .unwrap();
        for app in &created {
            app.run(Op::Start(1)).await.unwrap();
        }
        let renamed = apps.rename(&created[0], "new").unwrap();
        assert!(apps.resolve(&Target::Name("old".into())).is_err());
        assert!(apps.resolve(&Target::Name("new".into())).is_ok());
        let err = apps.rename(&renamed, "other").err().unwrap();
        assert!(err.contains("an app of that name exists"), "{err}");
        // The old name is free at once.
        apps.create(vec![sleeper("old", 1)])
            .unwrap()
            .remove(0)
            .run(Op::Start(1))
            .await
            .unwrap();
        assert_eq!(apps.env.peek_next_id(), 3);
        remove_all(&apps).await;
        // The renamed app, removed under its new name, freed it.
        assert!(apps.all().is_empty());
        assert_eq!(apps.env.peek_next_id(), 0);
    }

    #[tokio::test]
    async fn operations_on_one_app_run_in_order_and_the_last_removal_frees_the_name() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let app = apps.create(vec![sleeper("s", 2)]).unwrap().remove(0);
        app.run(Op::Start(2)).await.unwrap();
        let first = pids(&app);
        assert_eq!(first.len(), 2);

        // Sent together: the scale finishes before the removal starts, so
        // the removal takes every instance the scale made.
        let (scaled, removed) = tokio::join!(
            app.run(Op::Scale(ScaleCount::To(4))),
            app.run(Op::Remove(Selection::All))
        );
        assert_eq!(scaled.unwrap().len(), 4);
        let removed = removed.unwrap();
        assert_eq!(removed.len(), 4);
        assert!(removed.iter().all(|h| h.state().status == Status::Stopped));
        for h in &removed {
            assert!(h.state().pid.is_none());
        }
        for pid in first {
            assert!(!alive(pid), "pid {pid} outlived its app");
        }
        assert!(apps.all().is_empty());
        let late = app.run(Op::Start(1)).await.err().unwrap();
        assert!(late.contains("deleted"), "{late}");
        // The name is free again.
        apps.create(vec![sleeper("s", 1)]).unwrap();
    }

    /// Polls `f` until it holds, for at most the given seconds.
    async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn while_retiring_a_crash_is_recorded_and_restarted_only_once_serving_again() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let app = apps.create(vec![sleeper("s", 1)]).unwrap().remove(0);
        app.run(Op::Start(1)).await.unwrap();
        let h = app.instances().remove(0);
        let first = h.state().pid.unwrap();

        apps.env.retiring.send_replace(true);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        until("the exit is recorded", 30, || {
            let s = h.state();
            s.pid.is_none() && s.status == Status::WaitingRestart && s.last_exit.is_some()
        })
        .await;
        // Longer than the restart delay (none): still held.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(h.state().pid, None);
        assert_eq!(h.state().status, Status::WaitingRestart);

        apps.env.retiring.send_replace(false);
        until("the restart once serving again", 30, || {
            let s = h.state();
            s.status == Status::Online && s.pid.is_some_and(|p| p != first)
        })
        .await;
        assert_eq!(h.state().restarts, 1);
        app.run(Op::Remove(Selection::All)).await.unwrap();
    }

    #[tokio::test]
    async fn adopted_instances_keep_their_ids_indexes_restarts_and_downs() {
        use crate::daemon::app::Adoption;
        use crate::daemon::instance::Beginning;
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let app = apps.create(vec![sleeper("s", 2)]).unwrap().remove(0);
        let adoptions = vec![
            Adoption {
                id: 7,
                instance: 1,
                beginning: Beginning {
                    restarts: 3,
                    down: None,
                    held: None,
                },
                unique_id: None,
            },
            Adoption {
                id: 9,
                instance: 0,
                beginning: Beginning {
                    restarts: 2,
                    down: Some(Status::Stopped),
                    held: None,
                },
                unique_id: None,
            },
        ];
        // Answers once the launched one is up; the one down does not hold
        // it back.
        let adopted = app.run(Op::Adopt(adoptions)).await.unwrap();
        let seen: Vec<(u32, u32, u32, Status, bool)> = adopted
            .iter()
            .map(|h| {
                let s = h.state();
                (
                    h.identity.id,
                    h.identity.instance,
                    s.restarts,
                    s.status,
                    s.pid.is_some(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (7, 1, 3, Status::Online, true),
                (9, 0, 2, Status::Stopped, false)
            ]
        );
        // The one down starts on request.
        let found = apps.resolve(&Target::Id(9)).unwrap().remove(0);
        app.run(Op::Restart {
            selection: found.1,
            update: SpecUpdate::default(),
        })
        .await
        .unwrap();
        let nine = app
            .instances()
            .into_iter()
            .find(|h| h.identity.id == 9)
            .unwrap();
        assert_eq!(nine.state().status, Status::Online);
        app.run(Op::Remove(Selection::All)).await.unwrap();
    }

    #[tokio::test]
    async fn scale_keeps_the_lowest_indexes() {
        let home = tempfile::tempdir().unwrap();
        let apps = apps(&home);
        let app = apps.create(vec![sleeper("s", 3)]).unwrap().remove(0);
        app.run(Op::Start(3)).await.unwrap();
        app.run(Op::Scale(ScaleCount::Remove(2))).await.unwrap();
        let left: Vec<u32> = app
            .instances()
            .iter()
            .map(|h| h.identity.instance)
            .collect();
        assert_eq!(left, [0]);
        app.run(Op::Scale(ScaleCount::Add(1))).await.unwrap();
        let mut indexes: Vec<u32> = app
            .instances()
            .iter()
            .map(|h| h.identity.instance)
            .collect();
        indexes.sort();
        assert_eq!(indexes, [0, 1]);
        app.run(Op::Remove(Selection::All)).await.unwrap();
    }
}
