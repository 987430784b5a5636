//! Log rotation (pm2-logrotate's settings, built in): by size and by date,
//! per app (`log_rotate`) and global (`rsup set pm2-logrotate:…`), while
//! processes write as fast as they can.

use crate::harness::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The rotated files of `<logs>/<base>.log` (`<base>__<date>….log[.gz]`),
/// oldest first (by modification time, then name).
fn rotated(logs: &Path, base: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return vec![];
    };
    let mut found: Vec<_> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(&format!("{base}__"))
                && (name.ends_with(".log") || name.ends_with(".log.gz"));
            let modified = e.metadata().ok()?.modified().ok()?;
            let rotated_as = name.strip_suffix(".gz").unwrap_or(&name).to_owned();
            ours.then_some((modified, rotated_as.len(), rotated_as, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(.., p)| p).collect()
}

/// Every file of `<base>`'s rotation (rotated, being compressed, current)
/// with its size; `None` while one goes away as it is listed.
fn rotation_files(logs: &Path, base: &str) -> Option<Vec<(String, u64)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(logs).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{base}__")) || name == format!("{base}.log") {
            found.push((name, entry.metadata().ok()?.len()));
        }
    }
    found.sort();
    Some(found)
}

/// Waits, once the writers are done, until rotation has nothing left to do
/// with `<base>.log`, and returns its rotated files: the current log below
/// `max_size` (the last line asked for no rotation), no file being
/// compressed, the names of the rotated files `settled` (compressed, the
/// oldest deleted), and the same files and sizes in two listings in a row
/// (none going as the first was taken).
fn wait_settled(
    logs: &Path,
    base: &str,
    max_size: u64,
    settled: impl Fn(&[&str]) -> bool,
) -> Vec<PathBuf> {
    let current = format!("{base}.log");
    let mut last = None;
    wait_for(&format!("rotation of {base} to settle"), || {
        let files = rotation_files(logs, base);
        let stable = files.is_some() && files == last;
        last = files;
        let files = last.as_ref()?;
        let quiet = files
            .iter()
            .all(|(name, size)| !name.ends_with(".part") && (name != &current || *size < max_size));
        let names: Vec<&str> = files
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| *name != current)
            .collect();
        (stable && quiet && settled(&names)).then_some(())
    });
    rotated(logs, base)
}

/// A file's text, gunzipped if it is a `.gz`.
fn read(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s)?;
        Ok(s)
    } else {
        String::from_utf8(bytes).map_err(std::io::Error::other)
    }
}

/// A file's text; every file must end with a whole line.
fn text(path: &Path) -> String {
    let text = read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} does not end with a whole line",
        path.display()
    );
    text
}

/// Rotated files oldest first, then the current log, as one text.
fn all_of(logs: &Path, base: &str) -> (usize, String) {
    let files = rotated(logs, base);
    let mut all: String = files.iter().map(|p| text(p)).collect();
    all.push_str(&text(&logs.join(format!("{base}.log"))));
    (files.len(), all)
}

/// Each writer's line numbers, in the order they appear; panics on a line
/// that is not one the fixture writes whole (a split or mixed line).
fn numbers(all: &str) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut by_writer = std::collections::BTreeMap::<String, Vec<u64>>::new();
    let filler = "x".repeat(40);
    for line in all.lines() {
        if line.contains(" done ") {
            continue;
        }
        let mut parts = line.split(' ');
        let (Some(w), Some(n), Some(rest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("not a whole line: {line:?}");
        };
        assert_eq!(rest, filler, "not a whole line: {line:?}");
        by_writer
            .entry(w.to_string())
            .or_default()
            .push(n.parse().unwrap());
    }
    by_writer
}

/// Waits until the writers have each written their last line (`done
/// <count>`), in any of the files (a rotation may fall between them).
/// Rotated files come and go meanwhile (compressed, deleted): one that
/// cannot be read counts nothing.
fn wait_done(logs: &Path, base: &str, writers: usize, count: u64) {
    let last = format!(" done {count}\n");
    wait_for(&format!("{writers} writers to finish {base}"), || {
        let done: usize = rotated(logs, base)
            .into_iter()
            .chain([logs.join(format!("{base}.log"))])
            .filter_map(|p| read(&p).ok())
            .map(|t| t.matches(&last).count())
            .sum();
        (done >= writers).then_some(())
    });
}

/// Restarts `name` writing `count` lines, which its last line says.
fn restart_counting(r: &Rsup, name: &str, count: u64) {
    let out = r
        .cmd()
        .args(["restart", name, "--update-env"])
        .env("COUNT", count.to_string())
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn logs_rotate_by_size_between_whole_lines_keeping_retain_files() {
    let r = Rsup::new();
    let logs = r.home.path().join("logs");
    let eco = r.path("eco.json");
    let script = fixture("numbered.js");
    // Two instances share one file; the app's own setting over the global
    // one (set below): no compression, every rotated file kept.
    std::fs::write(
        &eco,
        serde_json::json!({"apps": [{
            "name": "merged", "script": script, "instances": 2, "merge_logs": true,
            "log_rotate": {"max_size": "16K", "retain": 1000, "compress": false}
        }]})
        .to_string(),
    )
    .unwrap();
    r.ok(&["start", eco.to_str().unwrap()]);
    wait_done(&logs, "merged-out", 2, 5000);
    wait_settled(&logs, "merged-out", 16 * 1024, |_| true);
    let (count, all) = all_of(&logs, "merged-out");
    assert!(count >= 10, "only {count} rotated files");
    assert!(rotated(&logs, "merged-out")
        .iter()
        .all(|p| p.to_string_lossy().ends_with(".log")));
    let by_writer = numbers(&all);
    assert_eq!(by_writer.len(), 2, "{:?}", by_writer.keys());
    for (writer, ns) in &by_writer {
        assert!(
            ns.iter().copied().eq(0..5000),
            "{writer}: lines lost, repeated or out of order"
        );
    }

    // PM2 users' commands: global settings, for every app.
    for (key, value) in [("max_size", "8K"), ("retain", "3"), ("compress", "true")] {
        r.ok(&["set", &format!("pm2-logrotate:{key}"), value]);
    }
    assert!(r.ok(&["get", "pm2-logrotate:retain"]).trim() == "3");
    let bad = r.run(&["set", "pm2-logrotate:max_size", "huge"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pm2-logrotate:max_size"));
    assert_success(&r.start_fixture("numbered.js", "global", &[], &[]));
    wait_done(&logs, "global-out", 1, 5000);
    let retained_compressed =
        |names: &[&str]| names.len() == 3 && names.iter().all(|n| n.ends_with(".log.gz"));
    let files = wait_settled(&logs, "global-out", 8 * 1024, retained_compressed);
    let (_, all) = all_of(&logs, "global-out");
    let ns = &numbers(&all)["w0"];
    // The newest lines, all of them, in order, up to the last.
    let first = ns[0];
    assert!(first > 0, "the oldest files were deleted");
    assert!(ns.iter().copied().eq(first..5000), "{files:?}");

    // flush empties the current logs, reloadLogs reopens them; rotation
    // goes on after both.
    r.ok(&["flush", "global"]);
    r.ok(&["reloadLogs"]);
    assert_eq!(
        std::fs::read_to_string(logs.join("global-out.log")).unwrap(),
        ""
    );
    restart_counting(&r, "global", 3000);
    wait_done(&logs, "global-out", 1, 3000);
    wait_settled(&logs, "global-out", 8 * 1024, retained_compressed);
    let ns = &numbers(&all_of(&logs, "global-out").1)["w0"];
    assert_eq!(*ns.last().unwrap(), 2999);

    // An app may turn rotation off; `uninstall` turns it off for all.
    let off = r.path("off.json");
    std::fs::write(
        &off,
        serde_json::json!({"apps": [{"name": "off", "script": script, "log_rotate": false}]})
            .to_string(),
    )
    .unwrap();
    r.ok(&["start", off.to_str().unwrap()]);
    wait_done(&logs, "off-out", 1, 5000);
    assert!(rotated(&logs, "off-out").is_empty());
    let bad = r.run(&["install", "pm2-auto-pull"]);
    assert!(!bad.status.success());
    r.ok(&["uninstall", "pm2-logrotate"]);
    assert_eq!(r.ok(&["get"]).trim(), "");
    let before = rotated(&logs, "global-out").len();
    r.ok(&["flush", "global"]);
    restart_counting(&r, "global", 4000);
    wait_done(&logs, "global-out", 1, 4000);
    assert_eq!(rotated(&logs, "global-out").len(), before);
    let ns = &numbers(&text(&logs.join("global-out.log")))["w0"];
    assert!(ns.iter().copied().eq(0..4000));
    r.ok(&["install", "pm2-logrotate"]);
    assert!(
        std::fs::read_to_string(r.home.path().join("module_conf.json"))
            .unwrap()
            .contains("pm2-logrotate")
    );
}

#[test]
fn logs_rotate_at_the_cron_pattern_of_rotate_interval() {
    let r = Rsup::new();
    let logs = r.home.path().join("logs");
    let eco = r.path("eco.json");
    std::fs::write(
        &eco,
        serde_json::json!({"apps": [{
            "name": "ticks", "script": fixture("ticker.js"), "log_file": true,
            "log_rotate": {"dateFormat": "HH-mm-ss"}
        }]})
        .to_string(),
    )
    .unwrap();
    r.ok(&["start", eco.to_str().unwrap()]);
    // The global pattern, with the app's own date format: every second,
    // each log of the app (out, error and the combined one) and the
    // daemon's own log, which `set` has just written to.
    r.ok(&["set", "pm2-logrotate:rotateInterval", "* * * * * *"]);
    wait_for("three rotations of each log", || {
        ["ticks-out", "ticks-error", "ticks"]
            .iter()
            .all(|base| rotated(&logs, base).len() >= 3)
            .then_some(())
    });
    wait_for("the daemon's log to rotate", || {
        (!rotated(r.home.path(), "rsup").is_empty()).then_some(())
    });
    r.ok(&["stop", "ticks"]);
    let name = rotated(&logs, "ticks-out")[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // ticks-out__HH-mm-ss.log
    assert_eq!(name.len(), "ticks-out__00-00-00.log".len(), "{name}");
    let (_, all) = all_of(&logs, "ticks-out");
    let ticks: Vec<u64> = all
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(ticks.iter().copied().eq(0..ticks.len() as u64), "{ticks:?}");
    let (_, combined) = all_of(&logs, "ticks");
    assert_eq!(
        combined.lines().filter(|l| l.starts_with("tick ")).count(),
        ticks.len()
    );
}
