//! Turning an ecosystem file into JSON: `.json` directly, JavaScript by
//! asking `node` for `JSON.stringify(module.exports)`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::interpreter::which;

/// Longest a config file may take to evaluate: configs can do I/O, but one
/// that hangs (an open handle, a prompt) must not hang `rsup start`.
pub const NODE_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Precedes the JSON on node's stdout, so that anything the config prints
/// itself (a stray `console.log`) is skipped.
const RESULT_MARK: &str = "\u{1}rsup-config-result\u{1}";
/// Precedes the one-line error description on node's stderr.
const ERROR_MARK: &str = "\u{1}rsup-config-error\u{1}";

/// Runs in node with the config's absolute path as `process.argv[1]`.
/// `require` serves .js/.cjs (and ES modules, where node allows it);
/// `import()` serves .mjs and packages of `"type": "module"`. The error
/// line is the error's own `Name: message` plus the line in the config
/// file where node located it.
const LOADER: &str = r#"
const file = process.argv[1];
const RESULT = process.env.RSUP_CONFIG_RESULT_MARK, ERROR = process.env.RSUP_CONFIG_ERROR_MARK;
delete process.env.RSUP_CONFIG_RESULT_MARK; delete process.env.RSUP_CONFIG_ERROR_MARK;
const unwrap = (m) => (m && m[Symbol.toStringTag] === 'Module' && 'default' in m) ? m.default : m;
const load = () => {
  if (/\.mjs$/.test(file)) return import(require('url').pathToFileURL(file).href);
  try { return Promise.resolve(require(file)); }
  catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE'))
      return import(require('url').pathToFileURL(file).href);
    return Promise.reject(e);
  }
};
const describe = (e) => {
  if (!(e instanceof Error)) return 'threw ' + String(e);
  let text = (e.name || 'Error') + ': ' + String(e.message).split('\n')[0];
  const stack = String(e.stack || '');
  const first = stack.split('\n')[0];
  let line = null;
  if (first.startsWith(file + ':')) line = first.slice(file.length + 1);
  else {
    const at = stack.split('\n').find((l) => l.includes(file + ':'));
    const m = at && at.slice(at.indexOf(file + ':') + file.length + 1).match(/^(\d+)/);
    if (m) line = m[1];
  }
  if (line && /^\d+$/.test(line)) text += ' (line ' + line + ')';
  return text;
};
load().then((m) => {
  const out = JSON.stringify(unwrap(m));
  process.stdout.write(RESULT + (out === undefined ? 'null' : out), () => process.exit(0));
}, (e) => {
  process.stderr.write(ERROR + describe(e) + '\n', () => process.exit(1));
});
"#;

/// Reads the file at `path` (absolute) into a JSON value. `Err` holds the
/// reason the file does not evaluate, as one line.
pub fn evaluate(path: &Path, env: &BTreeMap<String, String>, cwd: &Path) -> Result<Value, String> {
    let name = path.to_string_lossy();
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        return Err("YAML ecosystem files are not supported; use .json or .config.js".into());
    }
    if name.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        return match serde_json::from_str(&text) {
            Ok(v) => Ok(v),
            // PM2 evaluates .json files as a JavaScript expression, so
            // comments and trailing commas work there; give node a go
            // before reporting the strict parser's error.
            Err(strict) => match which("node", env, cwd) {
                Some(_) => run_node(path, env, cwd, true, NODE_TIME_LIMIT)
                    .map_err(|_| format!("invalid JSON: {strict}")),
                None => Err(format!("invalid JSON: {strict}")),
            },
        };
    }
    run_node(path, env, cwd, false, NODE_TIME_LIMIT)
}

/// The loader for `.json` files that only node can read: PM2 evaluates
/// `(<contents>)` as an expression.
const JSON_EXPRESSION_LOADER: &str = r#"
const fs = require('fs'), vm = require('vm');
const RESULT = process.env.RSUP_CONFIG_RESULT_MARK;
const value = vm.runInNewContext('(' + fs.readFileSync(process.argv[1], 'utf8') + ')', {}, { timeout: 1000 });
process.stdout.write(RESULT + JSON.stringify(value), () => process.exit(0));
"#;

fn run_node(
    path: &Path,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    json_expression: bool,
    limit: Duration,
) -> Result<Value, String> {
    let node = which("node", env, cwd)
        .ok_or("node is needed to read this file but was not found in PATH")?;
    let loader = if json_expression {
        JSON_EXPRESSION_LOADER
    } else {
        LOADER
    };
    let mut child = Command::new(node)
        .arg("-e")
        .arg(loader)
        .arg(path)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .env("RSUP_CONFIG_RESULT_MARK", RESULT_MARK)
        .env("RSUP_CONFIG_ERROR_MARK", ERROR_MARK)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;

    // Drain both pipes on threads so a chatty config cannot fill a pipe
    // and stall while we wait for it to exit.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "node did not finish within {:.1} s",
                    limit.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for node: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();

    if status.success() {
        if let Some(at) = stdout.rfind(RESULT_MARK) {
            return serde_json::from_str(&stdout[at + RESULT_MARK.len()..])
                .map_err(|e| format!("node printed invalid JSON: {e}"));
        }
    }
    Err(node_error(&stderr).unwrap_or_else(|| format!("node exited with {status}")))
}

/// The loader's marked line, else the first line that looks like an error
/// (`SomethingError: …`), else the first non-empty line.
fn node_error(stderr: &str) -> Option<String> {
    if let Some(at) = stderr.rfind(ERROR_MARK) {
        let rest = &stderr[at + ERROR_MARK.len()..];
        return rest.lines().next().map(str::to_string);
    }
    let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| {
            l.split_once(": ")
                .is_some_and(|(name, _)| name.ends_with("Error") && !name.contains(' '))
        })
        .or_else(|| lines().next())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| k == "PATH" || k == "HOME")
            .collect()
    }

    fn eval(name: &str, text: &str) -> Result<Value, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        evaluate(&path, &env(), dir.path())
    }

    #[test]
    fn commonjs_config() {
        let v = eval(
            "ecosystem.config.js",
            "console.log('noise');\nmodule.exports = { apps: [{ name: 'a', script: 'a.js', hook: () => 1 }] };\n",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "apps": [{ "name": "a", "script": "a.js" }] })
        );
    }

    #[test]
    fn esm_config() {
        let v = eval(
            "ecosystem.config.mjs",
            "export default { apps: [{ script: 'x.js' }] };\n",
        )
        .unwrap();
        assert_eq!(v["apps"][0]["script"], "x.js");
    }

    #[test]
    fn config_sees_cli_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.config.js");
        std::fs::write(&path, "module.exports = { port: process.env.MY_PORT };").unwrap();
        let mut env = env();
        env.insert("MY_PORT".into(), "4100".into());
        assert_eq!(evaluate(&path, &env, dir.path()).unwrap()["port"], "4100");
    }

    #[test]
    fn syntax_error_is_one_line() {
        let e = eval("ecosystem.config.js", "module.exports = {\n  apps: [ }\n").unwrap_err();
        assert_eq!(e, "SyntaxError: Unexpected token '}' (line 2)");
    }

    #[test]
    fn runtime_error_names_the_line() {
        let e = eval("ecosystem.config.js", "const a = 1;\nfoo.bar();\n").unwrap_err();
        assert_eq!(e, "ReferenceError: foo is not defined (line 2)");
    }

    #[test]
    fn json_strict_and_lenient() {
        assert_eq!(
            eval("p.json", r#"{"apps":[{"script":"a.js"}]}"#).unwrap()["apps"][0]["script"],
            "a.js"
        );
        let v = eval(
            "p.json",
            "{\n  // comment\n  apps: [{ script: 'a.js', },],\n}\n",
        )
        .unwrap();
        assert_eq!(v["apps"][0]["script"], "a.js");
        let e = eval("p.json", "{ apps: [ }").unwrap_err();
        assert!(e.starts_with("invalid JSON: "), "{e}");
    }

    #[test]
    fn hanging_config_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.config.js");
        std::fs::write(&path, "while (true) {}").unwrap();
        let started = Instant::now();
        let e = run_node(&path, &env(), dir.path(), false, Duration::from_millis(300)).unwrap_err();
        assert_eq!(e, "node did not finish within 0.3 s");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn stderr_fallback() {
        assert_eq!(
            node_error("/x/a.js:3\n  }\n  ^\n\nSyntaxError: Unexpected token\n    at ...")
                .as_deref(),
            Some("SyntaxError: Unexpected token")
        );
        assert_eq!(
            node_error("\nsomething broke\n").as_deref(),
            Some("something broke")
        );
    }
}
