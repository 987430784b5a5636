//! Where the new output of a log file begins, for a file `logs` first sees
//! while it follows (a process started after it began): what was in the
//! file when `logs` began is old, the rest is new.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct Baseline {
    begun: SystemTime,
    /// The logs folder (where every log is, unless the app names another
    /// path) and the sizes of its files when `logs` began.
    dir: PathBuf,
    sizes: HashMap<PathBuf, u64>,
}

impl Baseline {
    /// Notes the sizes of the files in `dir` now.
    pub fn take(dir: &Path) -> Baseline {
        let begun = SystemTime::now();
        let sizes = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        Baseline {
            begun,
            dir: dir.to_path_buf(),
            sizes,
        }
    }

    /// The offset of `path` at which output written since `logs` began
    /// starts. A file of the logs folder that was not there, or one
    /// elsewhere created since, is new from its start; of another file
    /// elsewhere only what comes after now is new.
    pub fn start_of(&self, path: &Path) -> u64 {
        if let Some(size) = self.sizes.get(path) {
            return *size;
        }
        match std::fs::metadata(path) {
            Err(_) => 0,
            Ok(_) if path.parent() == Some(&self.dir) => 0,
            Ok(m) if m.created().is_ok_and(|c| c >= self.begun) => 0,
            Ok(m) => m.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_there_is_old_and_files_that_came_since_are_new() {
        let logs = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let (api, old_other) = (
            logs.path().join("api-out.log"),
            elsewhere.path().join("x.log"),
        );
        std::fs::write(&api, "12345").unwrap();
        std::fs::write(&old_other, "123").unwrap();
        let base = Baseline::take(logs.path());
        std::fs::write(&api, "1234567").unwrap();
        assert_eq!(base.start_of(&api), 5);
        let web = logs.path().join("web-out.log");
        std::fs::write(&web, "hello").unwrap();
        assert_eq!(base.start_of(&web), 0);
        assert_eq!(base.start_of(&logs.path().join("none.log")), 0);
        assert_eq!(base.start_of(&old_other), 3);
    }
}
