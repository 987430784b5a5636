//! Where an instance's output goes: PM2's file names, per instance or
//! shared.

use crate::home::Home;
use rsup_proto::app::AppSpec;
use std::path::{Path, PathBuf};

/// PM2's naming: `<name>-out.log`/`<name>-error.log` in the logs folder
/// unless configured; with several instances and no `merge_logs`, each
/// instance writes its own file, suffixed with its id.
pub fn log_paths(spec: &AppSpec, id: u32, home: &Home) -> (PathBuf, PathBuf) {
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
