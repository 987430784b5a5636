//! The table of instances the daemon runs, by `pm_id`, and the rules for
//! naming them: ids, instance indexes, log paths, and `all`/name/id targets.

use super::instance::{Identity, InstanceHandle};
use crate::home::Home;
use rsup_proto::app::AppSpec;
use rsup_proto::control::Target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Registry {
    next_id: u32,
    instances: BTreeMap<u32, InstanceHandle>,
}

impl Registry {
    /// The ids a target names, in id order.
    pub fn resolve(&self, target: &Target) -> Result<Vec<u32>, String> {
        let t = target.0.as_str();
        let ids: Vec<u32> = if t == "all" {
            self.instances.keys().copied().collect()
        } else if let Ok(id) = t.parse::<u32>() {
            self.instances
                .keys()
                .copied()
                .filter(|i| *i == id)
                .collect()
        } else {
            self.ids_of(t)
        };
        if ids.is_empty() && t != "all" {
            return Err(format!("process or app not found: {t}"));
        }
        Ok(ids)
    }

    pub fn ids_of(&self, name: &str) -> Vec<u32> {
        self.instances
            .iter()
            .filter(|(_, h)| h.identity.name == name)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn get(&self, id: u32) -> Option<InstanceHandle> {
        self.instances.get(&id).cloned()
    }

    pub fn handles(&self, ids: &[u32]) -> Vec<InstanceHandle> {
        ids.iter().filter_map(|id| self.get(*id)).collect()
    }

    pub fn all(&self) -> Vec<InstanceHandle> {
        self.instances.values().cloned().collect()
    }

    pub fn remove(&mut self, id: u32) {
        self.instances.remove(&id);
    }

    /// Reserves an id and the lowest free instance index of the app, and
    /// works out the instance's log files.
    pub fn new_identity(&mut self, spec: &AppSpec, home: &Home) -> Identity {
        let id = self.next_id;
        self.next_id += 1;
        let taken: Vec<u32> = self
            .instances
            .values()
            .filter(|h| h.identity.name == spec.name)
            .map(|h| h.identity.instance)
            .collect();
        let instance = (0..).find(|i| !taken.contains(i)).unwrap_or(0);
        let (out_log, err_log) = log_paths(spec, id, home);
        Identity {
            id,
            name: spec.name.clone(),
            instance,
            out_log,
            err_log,
        }
    }

    pub fn insert(&mut self, handle: InstanceHandle) {
        self.instances.insert(handle.identity.id, handle);
    }
}

/// PM2's naming: `<name>-out.log`/`<name>-error.log` in the logs folder
/// unless configured; with several instances and no `merge_logs`, each
/// instance writes its own file, suffixed with its id.
fn log_paths(spec: &AppSpec, id: u32, home: &Home) -> (PathBuf, PathBuf) {
    let logs = home.logs_dir();
    let out = spec
        .out_file
        .clone()
        .unwrap_or_else(|| logs.join(format!("{}-out.log", spec.name)));
    let err = spec
        .error_file
        .clone()
        .unwrap_or_else(|| logs.join(format!("{}-error.log", spec.name)));
    if spec.instances > 1 && !spec.merge_logs {
        (with_id(&out, id), with_id(&err, id))
    } else {
        (out, err)
    }
}

fn with_id(path: &Path, id: u32) -> PathBuf {
    if path == Path::new("/dev/null") {
        return path.to_path_buf();
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{id}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{id}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::restart_policy::tests::spec;

    #[test]
    fn log_files_get_the_id_only_when_instances_do_not_share() {
        let home = Home { dir: "/h".into() };
        let mut s = spec();
        s.name = "api".into();
        assert_eq!(
            log_paths(&s, 3, &home).0,
            PathBuf::from("/h/logs/api-out.log")
        );
        s.instances = 2;
        assert_eq!(
            log_paths(&s, 3, &home),
            (
                PathBuf::from("/h/logs/api-out-3.log"),
                PathBuf::from("/h/logs/api-error-3.log")
            )
        );
        s.merge_logs = true;
        assert_eq!(
            log_paths(&s, 3, &home).1,
            PathBuf::from("/h/logs/api-error.log")
        );
    }
}
