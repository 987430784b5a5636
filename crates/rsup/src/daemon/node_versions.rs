//! The Node version of each interpreter the daemon runs (PM2's
//! `pm2_env.node_version`), asked of the interpreter once (`node
//! --version`), in the background: a list never waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `node --version` may take before the version stays unknown.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default, Clone)]
pub struct NodeVersions(Arc<Mutex<HashMap<String, Option<String>>>>);

impl NodeVersions {
    /// The version of `interpreter` (`20.11.1`), if known yet; the first
    /// call for an interpreter sets off the question.
    pub fn of(&self, interpreter: &str) -> Option<String> {
        let mut known = self.0.lock().unwrap();
        if let Some(version) = known.get(interpreter) {
            return version.clone();
        }
        known.insert(interpreter.to_string(), None);
        let (versions, interpreter) = (self.clone(), interpreter.to_string());
        tokio::spawn(async move {
            let version = ask(&interpreter).await;
            versions.0.lock().unwrap().insert(interpreter, version);
        });
        None
    }
}

async fn ask(interpreter: &str) -> Option<String> {
    let run = tokio::process::Command::new(interpreter)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(ASK_TIMEOUT, run).await.ok()?.ok()?;
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// `v20.11.1\n` → `20.11.1`.
fn parse(text: &str) -> Option<String> {
    let version = text.trim().strip_prefix('v')?;
    version
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_node_s_without_the_v() {
        assert_eq!(parse("v20.11.1\n").as_deref(), Some("20.11.1"));
        assert_eq!(parse("Python 3.11.2"), None);
        assert_eq!(parse(""), None);
    }

    #[tokio::test]
    async fn the_version_is_learnt_in_the_background() {
        let versions = NodeVersions::default();
        assert_eq!(versions.of("node"), None);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while versions.of("node").is_none() {
            assert!(std::time::Instant::now() < deadline, "no version for node");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let version = versions.of("node").unwrap();
        assert!(
            version.starts_with(|c: char| c.is_ascii_digit()),
            "{version}"
        );
        assert_eq!(versions.of("/no/such/node"), None);
    }
}
