//! What a keeper hands the daemon it starts after the previous one ended
//! without stopping its apps: a file naming the descriptors it kept (now
//! inherited by the new daemon, at the same numbers) and what it learnt
//! meanwhile.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// The file's format: a daemon reads this very version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handed {
    pub version: u32,
    /// How the previous daemon ended, in words.
    pub ended: String,
    pub previous_pid: u32,
    pub entries: Vec<Entry>,
    /// Processes of the previous daemon that exited while no daemon ran.
    pub exits: Vec<Exit>,
}

/// What the previous daemon had the keeper keep under one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub pid: Option<u32>,
    pub meta: serde_json::Value,
    pub fds: Vec<RawFd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: u32,
    /// The raw wait status.
    pub status: i32,
}

pub fn path(home_dir: &Path) -> PathBuf {
    home_dir.join("handed.json")
}

impl Handed {
    pub fn fds(&self) -> Vec<RawFd> {
        self.entries.iter().flat_map(|e| e.fds.clone()).collect()
    }
}

/// Reads (and removes) the file; each descriptor it names must be open,
/// above stderr, and named once.
pub fn read(file: &Path) -> Result<Handed, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let _ = std::fs::remove_file(file);
    let handed: Handed = serde_json::from_slice(&data)
        .map_err(|e| format!("{}: not a hand-over rsup can read: {e}", file.display()))?;
    if handed.version != VERSION {
        return Err(format!(
            "{}: hand-over version {} is not {VERSION}",
            file.display(),
            handed.version
        ));
    }
    let mut seen = HashSet::new();
    for fd in handed.fds() {
        if fd <= 2 {
            return Err(format!(
                "{}: descriptor {fd} is not one to take",
                file.display()
            ));
        }
        if !seen.insert(fd) {
            return Err(format!(
                "{}: descriptor {fd} is named twice",
                file.display()
            ));
        }
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!("{}: descriptor {fd} is not open", file.display()));
        }
    }
    Ok(handed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::fd::IntoRawFd;

    fn sample(fd: RawFd) -> Handed {
        Handed {
            version: VERSION,
            ended: "killed by SIGKILL".into(),
            previous_pid: 7,
            entries: vec![Entry {
                key: "seat".into(),
                pid: None,
                meta: serde_json::json!({}),
                fds: vec![fd],
            }],
            exits: vec![Exit { pid: 9, status: 0 }],
        }
    }

    #[test]
    fn a_hand_over_naming_stdout_or_a_closed_descriptor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("handed.json");
        let open = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
        std::fs::write(&file, serde_json::to_vec(&sample(open)).unwrap()).unwrap();
        assert_eq!(read(&file).unwrap(), sample(open));
        assert!(read(&file).is_err(), "read once");
        for (fd, why) in [(1, "not one to take"), (900_000, "not open")] {
            std::fs::write(&file, serde_json::to_vec(&sample(fd)).unwrap()).unwrap();
            assert!(read(&file).unwrap_err().contains(why));
        }
        let mut twice = sample(open);
        twice.entries[0].fds.push(open);
        std::fs::write(&file, serde_json::to_vec(&twice).unwrap()).unwrap();
        assert!(read(&file).unwrap_err().contains("named twice"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any bytes, or a good file cut anywhere: an error, never a panic.
        #[test]
        fn damaged_hand_overs_are_errors(bytes in any::<Vec<u8>>(), cut in any::<usize>()) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("handed.json");
            std::fs::write(&file, &bytes).unwrap();
            let _ = read(&file);
            let whole = serde_json::to_vec(&sample(100)).unwrap();
            std::fs::write(&file, &whole[..cut % whole.len()]).unwrap();
            prop_assert!(read(&file).is_err());
        }
    }
}
