//! Runs the real `rsup` binary with a private `RSUP_HOME` per test, so tests
//! run in parallel without seeing each other.

use rsup_proto::app::{ProcessInfo, Status};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const RSUP: &str = env!("CARGO_BIN_EXE_rsup");

/// Generous bound for anything that should take a moment: these machines
/// are shared and noisy, so tests wait for conditions, never for a time.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .canonicalize()
        .expect("fixture exists")
}

pub struct Rsup {
    pub home: tempfile::TempDir,
    /// Scratch space for reports, trigger files and configs.
    pub work: tempfile::TempDir,
}

impl Rsup {
    pub fn new() -> Rsup {
        Rsup {
            home: tempfile::Builder::new().prefix("rsup-h").tempdir().unwrap(),
            work: tempfile::Builder::new().prefix("rsup-w").tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(RSUP);
        c.env("RSUP_HOME", self.home.path())
            .env_remove("RSUP_KILL_SIGNAL")
            .env_remove("PM2_KILL_SIGNAL")
            .env("NO_COLOR", "1")
            .current_dir(self.work.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("rsup runs")
    }

    /// Runs and insists on success, showing what went wrong otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rsup {args:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a fixture app as `name`, reporting its events to "report".
    pub fn start_fixture(
        &self,
        fixture_name: &str,
        name: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let app = fixture(fixture_name);
        let mut cmd = self.cmd();
        cmd.args(["start", app.to_str().unwrap(), "--name", name])
            .args(flags)
            .env("REPORT", self.path("report"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("rsup runs")
    }

    /// The daemon's own records of its processes (`jlist --native`).
    pub fn jlist(&self) -> Vec<ProcessInfo> {
        serde_json::from_str(&self.ok(&["jlist", "--native"])).expect("jlist is JSON")
    }

    pub fn process(&self, name: &str) -> ProcessInfo {
        self.jlist()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
    }

    pub fn wait_status(&self, name: &str, status: Status) -> ProcessInfo {
        wait_for(&format!("{name} to be {status:?}"), || {
            let p = self.process(name);
            (p.status == status).then_some(p)
        })
    }

    /// The lines the fixture app wrote to `file`.
    pub fn report(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    pub fn wait_report(&self, file: &str, line_starts: &str) -> Vec<String> {
        wait_for(&format!("{file} to contain {line_starts:?}"), || {
            let lines = self.report(file);
            lines
                .iter()
                .any(|l| l.starts_with(line_starts))
                .then_some(lines)
        })
    }
}

impl Drop for Rsup {
    fn drop(&mut self) {
        // Never leave a daemon or an app behind, whatever the test did.
        let _ = self.cmd().arg("kill").output();
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns Some, or panics naming what never happened.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; a zombie counts as gone for our purposes.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = status
        .rfind(')')
        .and_then(|i| status[i + 2..].chars().next());
    matches!(state, Some(s) if s != 'Z')
}
