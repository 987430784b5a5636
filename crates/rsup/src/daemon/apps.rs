//! The daemon's apps by name, and the one place where a [`Target`] becomes
//! the apps and instances it names. A name is taken the moment its app is
//! created, under one lock, so two requests can never create two apps with
//! one name.

use super::app::{AppHandle, Selection};
use super::instance::InstanceHandle;
use crate::home::Home;
use rsup_proto::app::AppSpec;
use rsup_proto::control::Target;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What every app needs from the daemon.
pub struct AppEnv {
    pub home: Home,
    /// rsup's Node preload, given to Node apps with `-r`.
    pub preload: Option<PathBuf>,
    /// The next `pm_id`: unique in the daemon, never reused.
    next_id: AtomicU32,
}

impl AppEnv {
    pub fn new(home: Home, preload: Option<PathBuf>) -> AppEnv {
        AppEnv {
            home,
            preload,
            next_id: AtomicU32::new(0),
        }
    }

    pub fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
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

    /// The app of this name, created (with no instance) if there is none;
    /// `true` when it was created.
    pub fn get_or_create(self: &Arc<Self>, spec: &AppSpec) -> (AppHandle, bool) {
        let mut by_name = self.by_name.lock().unwrap();
        if let Some(app) = by_name.get(&spec.name) {
            return (app.clone(), false);
        }
        let handle = self.spawn(spec.clone());
        by_name.insert(spec.name.clone(), handle.clone());
        (handle, true)
    }

    fn spawn(self: &Arc<Self>, spec: AppSpec) -> AppHandle {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let apps = Arc::downgrade(self);
        AppHandle::spawn(spec, self.env.clone(), generation, move |name: &str| {
            if let Some(apps) = apps.upgrade() {
                apps.forget(name, generation);
            }
        })
    }

    /// Called by an app that has no instance left: its name is free again.
    fn forget(&self, name: &str, generation: u64) {
        let mut by_name = self.by_name.lock().unwrap();
        if by_name
            .get(name)
            .is_some_and(|a| a.generation == generation)
        {
            by_name.remove(name);
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

    /// The apps a target names, each with the instances it names. A target
    /// that names nothing is an error, except `all`.
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
                    // PM2 reads a number as an id; an app named so is the
                    // only other thing it can mean.
                    None => named(apps, &id.to_string()),
                }
            }
            Target::Name(name) => named(apps, name),
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
            return Err(format!("process or app not found: {target}"));
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

fn named(apps: Vec<AppHandle>, name: &str) -> Vec<(AppHandle, Selection)> {
    apps.into_iter()
        .filter(|a| &*a.name == name)
        .map(|a| (a, Selection::All))
        .collect()
}
