//! Finding programs in `PATH` and choosing the interpreter of a script the
//! way PM2 does (lib/API/interpreter.json and Common.sink.resolveInterpreter).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Looks `program` up in the `PATH` of `env` (the CLI's environment, not
/// this process's, so tests and the daemon see the same thing). A name
/// with a slash is checked as a path relative to `cwd`.
pub fn which(program: &str, env: &BTreeMap<String, String>, cwd: &Path) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = cwd.join(program);
        return is_executable(&p).then_some(p);
    }
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| cwd.join(dir).join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What runs a script when the user named no interpreter.
#[derive(Debug, PartialEq, Eq)]
pub enum Default {
    /// Run by this program (looked up in `PATH`).
    Program(&'static str),
    /// Python: PM2 says `python` and falls back to `python3`; we try the
    /// other way round, because where both exist `python` may still be
    /// Python 2 while scripts today are written for Python 3.
    Python,
    /// Executed directly (a binary, or a script with a non-Node shebang).
    Direct,
}

/// PM2's table by extension, then its fallback: binaries run directly and
/// any other file is given to node. One refinement: a text file whose `#!`
/// line names something other than node runs directly too, where PM2
/// would hand a bash script without extension to node and fail.
pub fn by_extension(script: &Path) -> Default {
    let ext = script.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "js" | "cjs" | "mjs" => Default::Program("node"),
        "sh" => Default::Program("bash"),
        "py" => Default::Python,
        "rb" => Default::Program("ruby"),
        "php" => Default::Program("php"),
        "pl" => Default::Program("perl"),
        "coffee" => Default::Program("coffee"),
        "ls" => Default::Program("lsc"),
        "ts" | "tsx" => Default::Program("bun"),
        _ => match head(script) {
            Some(bytes) if is_binary(&bytes) => Default::Direct,
            Some(bytes) if bytes.starts_with(b"#!") => {
                let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                if String::from_utf8_lossy(line).contains("node") {
                    Default::Program("node")
                } else {
                    Default::Direct
                }
            }
            _ => Default::Program("node"),
        },
    }
}

fn head(path: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0; 512];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Executable formats and anything with a NUL byte in its first block.
fn is_binary(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF") || head.contains(&0)
}

/// Whether `interpreter` is Node, so the process gets Node's IPC channel
/// and can run in cluster mode. Like PM2's runtime check: the last path
/// segment, without a version suffix (`node18`, `node-v20.1.0`, `node@18`),
/// is `nodejs` or ends in `node`.
pub fn is_node(interpreter: &str) -> bool {
    let base = interpreter
        .rsplit('/')
        .next()
        .unwrap_or(interpreter)
        .to_ascii_lowercase();
    let trimmed = strip_version(&base);
    trimmed == "nodejs" || trimmed.ends_with("node")
}

/// Programs that run the app's Node as a child of their own (package
/// managers and their launchers), by the file name a user or a shim gives
/// them: the commands, and the scripts they are links to.
const PACKAGE_MANAGERS: &[&str] = &[
    "npm",
    "npx",
    "npm-cli.js",
    "npx-cli.js",
    "yarn",
    "yarnpkg",
    "yarn.js",
    "yarn.cjs",
    "pnpm",
    "pnpx",
    "pnpm.cjs",
    "pnpx.cjs",
    "corepack",
    "corepack.cjs",
];

/// Whether `program` is a package manager (`npm`, `npx`, `yarn`, `pnpm`,
/// `corepack` and their shims), which starts the app's Node in a process
/// of its own rather than being it.
pub fn is_package_manager(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    PACKAGE_MANAGERS.contains(&base)
}

/// Whether the app's command is a package manager: its script (`rsup start
/// npm -- start`, `script: 'yarn'`), or the first word of a command line
/// run by a shell (`script: 'npm run serve'`).
pub fn runs_package_manager(spec: &rsup_proto::app::AppSpec) -> bool {
    if is_package_manager(&spec.script) {
        return true;
    }
    let shell = spec.interpreter.is_none()
        && matches!(
            spec.script.rsplit('/').next(),
            Some("bash" | "sh" | "dash" | "zsh")
        );
    match (shell, spec.args.as_slice()) {
        (true, [flag, line]) if flag == "-c" => line
            .split_whitespace()
            .next()
            .is_some_and(is_package_manager),
        _ => false,
    }
}

fn strip_version(name: &str) -> &str {
    // Drop a trailing `[-@_.]?v?<digits>(.<digits>)*`.
    let bytes = name.as_bytes();
    let mut end = bytes.len();
    while end > 0 && (bytes[end - 1].is_ascii_digit() || bytes[end - 1] == b'.') {
        end -= 1;
    }
    if end == bytes.len() || !bytes[end..].first().is_some_and(u8::is_ascii_digit) {
        return name;
    }
    if end > 0 && bytes[end - 1] == b'v' {
        end -= 1;
    }
    if end > 0 && matches!(bytes[end - 1], b'-' | b'@' | b'_' | b'.') {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_detection() {
        for yes in [
            "node",
            "/usr/bin/node",
            "nodejs",
            "node18",
            "node-v20.1.0",
            "node@18",
            "/x/.n/bin/node",
        ] {
            assert!(is_node(yes), "{yes}");
        }
        for no in [
            "python3",
            "/usr/bin/bun",
            "bash",
            "/home/node/venv/bin/python",
            "nodemon",
        ] {
            assert!(!is_node(no), "{no}");
        }
    }

    #[test]
    fn package_managers() {
        for yes in [
            "npm",
            "/usr/bin/npm",
            "/usr/lib/node_modules/npm/bin/npm-cli.js",
            "npx",
            "yarn",
            "/home/u/.cache/node/corepack/yarn/4.1.0/bin/yarn.js",
            "pnpm",
            "/x/pnpm.cjs",
            "corepack",
        ] {
            assert!(is_package_manager(yes), "{yes}");
        }
        for no in [
            "node",
            "/usr/bin/node",
            "server.js",
            "npm-run-all",
            "bun",
            "nodemon",
        ] {
            assert!(!is_package_manager(no), "{no}");
        }
    }

    #[test]
    fn apps_run_through_a_package_manager() {
        let mut spec = crate::test_support::spec();
        assert!(!runs_package_manager(&spec));
        spec.script = "/usr/bin/npm".into();
        spec.args = vec!["start".into()];
        assert!(runs_package_manager(&spec));
        spec.script = "/bin/bash".into();
        spec.interpreter = None;
        spec.args = vec!["-c".into(), "yarn run serve".into()];
        assert!(runs_package_manager(&spec));
        spec.args = vec!["-c".into(), "node server.js".into()];
        assert!(!runs_package_manager(&spec));
    }

    #[test]
    fn extensions() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str, content: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        assert_eq!(by_extension(&p("a.js", b"")), Default::Program("node"));
        assert_eq!(by_extension(&p("a.mjs", b"")), Default::Program("node"));
        assert_eq!(by_extension(&p("a.py", b"")), Default::Python);
        assert_eq!(by_extension(&p("a.sh", b"")), Default::Program("bash"));
        assert_eq!(by_extension(&p("a.rb", b"")), Default::Program("ruby"));
        assert_eq!(
            by_extension(&p("www", b"#!/usr/bin/env node\n")),
            Default::Program("node")
        );
        assert_eq!(
            by_extension(&p("run", b"#!/bin/sh\necho\n")),
            Default::Direct
        );
        assert_eq!(
            by_extension(&p("plain", b"console.log(1)\n")),
            Default::Program("node")
        );
        assert_eq!(by_extension(&p("bin", b"\x7fELF\x02\x01")), Default::Direct);
    }

    #[test]
    fn which_uses_given_path() {
        let env: BTreeMap<_, _> =
            [("PATH".to_string(), "/nonexistent:/bin:/usr/bin".to_string())].into();
        assert!(which("sh", &env, Path::new("/")).is_some());
        assert!(which("surely-not-a-program-xyz", &env, Path::new("/")).is_none());
        assert!(which("sh", &BTreeMap::new(), Path::new("/")).is_none());
    }
}
