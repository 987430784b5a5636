//! Logs that cannot be written: the output waits and arrives once they can,
//! without a restart, and `list`, `start` and `describe` say what is wrong
//! meanwhile.

use crate::harness::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An app that prints a numbered line every 20 ms, long enough to fill the
/// slack of a file's last page quickly.
fn ticker(r: &Rsup) -> PathBuf {
    let script = r.path("ticker.js");
    std::fs::write(
        &script,
        "let n = 0;\nsetInterval(() => console.log('tick ' + n++ + ' ' + 'x'.repeat(100)), 20);\n",
    )
    .unwrap();
    script
}

/// The tick numbers of the whole lines of a log.
fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("tick "))
        .filter(|l| l.len() > 100)
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

/// A small tmpfs mounted over a folder for the test's duration.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` where mounting is not permitted (not root, no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "note: cannot mount a tmpfs ({}); skipping the full-disk test",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a daemon still holding a log open must not keep it.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![b'f'; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // What is left is less than a chunk: fill it in smaller pieces.
    let byte = [b'f'];
    while f.write_all(&byte).is_ok() {}
}

#[test]
fn after_a_full_disk_output_arrives_again_without_a_restart() {
    let r = Rsup::new();
    let logs = r.home.path().join("logs");
    let Some(tmpfs) = Tmpfs::mount(&logs, "1m") else {
        return;
    };
    let script = ticker(&r);
    r.ok(&["start", script.to_str().unwrap(), "--name", "ticker"]);
    let before = r.wait_status("ticker", rsup_proto::app::Status::Online);
    let out_log = before.out_log.clone();
    assert!(out_log.starts_with(&logs));
    wait_for("the first ticks", || {
        let log = std::fs::read_to_string(&out_log).ok()?;
        (!ticks(&log).is_empty()).then_some(())
    });

    let filler = logs.join("filler");
    fill(&filler);
    // The next writes fail: the app runs on, and the daemon says so.
    let failing = wait_for("the log error to be reported", || {
        let p = r.process("ticker");
        p.log_error.is_some().then_some(p)
    });
    let error = failing.log_error.unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    assert!(error.contains(out_log.to_str().unwrap()), "{error}");
    let described = r.ok(&["describe", "ticker"]);
    assert!(described.contains("failing: cannot write"), "{described}");
    let table = r.ok(&["list"]);
    assert!(table.contains("online !"), "{table}");
    assert!(table.contains("! ticker (id 0): cannot write"), "{table}");

    // Free the space as an operator would: empty the log, drop the filler.
    let last_written = ticks(&std::fs::read_to_string(&out_log).unwrap())
        .last()
        .copied()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&out_log)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::fs::remove_file(&filler).unwrap();

    // What the app printed meanwhile arrives, then what it prints next.
    let log = wait_for("output to arrive again", || {
        let log = std::fs::read_to_string(&out_log).ok()?;
        let t = ticks(&log);
        (t.len() > 5 && r.process("ticker").log_error.is_none()).then_some(log)
    });
    let t = ticks(&log);
    assert!(
        t.windows(2).all(|w| w[1] == w[0] + 1),
        "held lines are lost or out of order:\n{log}"
    );
    // The line being written when the disk filled may have gone with the
    // truncation; nothing after it did.
    assert!(t[0] <= last_written + 2, "{} > {last_written} + 2", t[0]);
    let after = r.process("ticker");
    assert_eq!(after.pid, before.pid, "no restart");
    assert_eq!(after.restarts, 0);
    // A short outage fits in the backlog: nothing dropped.
    assert_eq!(after.log_dropped_bytes, 0);
    assert!(!log.contains("bytes of output dropped"), "{log}");
    let described = r.ok(&["describe", "ticker"]);
    assert!(described.contains("│ log writing "), "{described}");
    assert!(!described.contains("failing:"), "{described}");
    assert!(!r.ok(&["list"]).contains(" ! "));

    r.ok(&["kill"]);
    drop(tmpfs);
}

#[test]
fn a_log_that_cannot_be_opened_is_reported_and_written_once_it_can() {
    let r = Rsup::new();
    let script = ticker(&r);
    // A file where the log's folder should be: the folder cannot be made,
    // even by root.
    let blocker = r.path("logs");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out_log = blocker.join("ticker.log");
    let started = r.run(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "ticker",
        "-o",
        out_log.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&started.stdout);
    assert!(stdout.contains("online !"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "! ticker (id 0): cannot open {}",
            out_log.display()
        )),
        "{stdout}"
    );
    let p = r.process("ticker");
    let error = p.log_error.expect("reported in jlist");
    assert!(error.contains("cannot open"), "{error}");
    let described = r.ok(&["describe", "ticker"]);
    assert!(
        described.contains(&format!("failing: cannot open {}", out_log.display())),
        "{described}"
    );
    // A restart does not hide it.
    let restarted = r.ok(&["restart", "ticker"]);
    assert!(
        restarted.contains("! ticker (id 0): cannot open"),
        "{restarted}"
    );
    let pid = r.process("ticker").pid;

    // Once the folder can be made, the output goes to the log, same process.
    std::fs::remove_file(&blocker).unwrap();
    wait_for("output in the log", || {
        let log = std::fs::read_to_string(&out_log).ok()?;
        (ticks(&log).len() > 3).then_some(())
    });
    wait_for("the error to clear", || {
        r.process("ticker").log_error.is_none().then_some(())
    });
    assert_eq!(r.process("ticker").pid, pid);
    let described = r.ok(&["describe", "ticker"]);
    assert!(!described.contains("failing:"), "{described}");
}
