//! The files an instance writes (its logs and its pid file), named as PM2
//! names them, per instance or shared.

use crate::home::Home;
use rsup_proto::app::AppSpec;
use std::path::{Path, PathBuf};

/// PM2's naming: `<name>-out.log`/`<name>-error.log` in the logs folder
/// unless configured; with several instances and no `merge_logs`, each
/// instance writes its own file, suffixed with its id.
pub fn log_paths(spec: &AppSpec, id: u32, home: &Home) -> (PathBuf, PathBuf) {
    let (out, err) = shared_log_paths(spec, home);
    if per_instance(spec) {
        (with_id(&out, id), with_id(&err, id))
    } else {
        (out, err)
    }
}

/// The log of both streams (`log_file`), named like the others.
pub fn combined_log_path(spec: &AppSpec, id: u32) -> Option<PathBuf> {
    let path = spec.log_file.as_ref()?;
    Some(if per_instance(spec) {
        with_id(path, id)
    } else {
        path.clone()
    })
}

/// PM2 writes a pid file for every instance: `<home>/pids/<name>-<id>.pid`,
/// or `<stem>-<id>.<ext>` of the configured `pid_file`.
pub fn pid_path(spec: &AppSpec, id: u32, home: &Home) -> PathBuf {
    match &spec.pid_file {
        Some(path) => with_id(path, id),
        None => home.pids_dir().join(format!("{}-{id}.pid", spec.name)),
    }
}

fn per_instance(spec: &AppSpec) -> bool {
    spec.instances > 1 && !spec.merge_logs
}

fn shared_log_paths(spec: &AppSpec, home: &Home) -> (PathBuf, PathBuf) {
    let logs = home.logs_dir();
    let out = spec
        .out_file
        .clone()
        .unwrap_or_else(|| logs.join(format!("{}-out.log", spec.name)));
    let err = spec
        .error_file
        .clone()
        .unwrap_or_else(|| logs.join(format!("{}-error.log", spec.name)));
    (out, err)
}

fn with_id(path: &Path, id: u32) -> PathBuf {
    // A device (/dev/null, or /dev/stdout in a container) is one for all
    // instances; as in PM2, which adds the id only to names ending in .log.
    if path.starts_with("/dev") {
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

    #[test]
    fn a_device_is_shared_by_every_instance() {
        let home = Home { dir: "/h".into() };
        let mut s = spec();
        s.instances = 2;
        s.out_file = Some("/dev/stdout".into());
        s.error_file = Some("/dev/stderr".into());
        assert_eq!(
            log_paths(&s, 1, &home),
            ("/dev/stdout".into(), "/dev/stderr".into())
        );
        s.log_file = Some("/dev/null".into());
        assert_eq!(combined_log_path(&s, 1), Some("/dev/null".into()));
    }

    #[test]
    fn pid_files_always_carry_the_id() {
        let home = Home { dir: "/h".into() };
        let mut s = spec();
        s.name = "api".into();
        assert_eq!(pid_path(&s, 0, &home), PathBuf::from("/h/pids/api-0.pid"));
        s.pid_file = Some("/run/echo.pid".into());
        assert_eq!(pid_path(&s, 4, &home), PathBuf::from("/run/echo-4.pid"));
        assert_eq!(combined_log_path(&s, 4), None);
        s.log_file = Some("/l/all.log".into());
        assert_eq!(combined_log_path(&s, 4), Some(PathBuf::from("/l/all.log")));
        s.instances = 2;
        assert_eq!(
            combined_log_path(&s, 4),
            Some(PathBuf::from("/l/all-4.log"))
        );
    }
}
