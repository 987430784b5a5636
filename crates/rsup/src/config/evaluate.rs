//! Turning an ecosystem file into JSON: `.json` directly, JavaScript by
//! asking `node` for `JSON.stringify(module.exports)`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
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
const fail = (text) => process.stderr.write(ERROR + text + '\n', () => process.exit(1));
let settled = false;
// The event loop ran dry with the exports still pending: a promise that
// never settles would otherwise exit 0 with nothing said.
process.on('beforeExit', () => {
  if (!settled) fail('the file\'s exports never settled (a promise that never resolves?)');
});
load().then((m) => {
  settled = true;
  const value = unwrap(m);
  if (typeof value === 'function')
    return fail('the file exports a function; export an object instead: module.exports = { apps: [...] }');
  const out = JSON.stringify(value);
  process.stdout.write(RESULT + (out === undefined ? 'null' : out), () => process.exit(0));
}, (e) => {
  settled = true;
  fail(describe(e));
});
"#;

/// Reads the file at `path` (absolute) into a JSON value. `Err` holds the
/// reason the file does not evaluate, as one line.
pub fn evaluate(path: &Path, env: &BTreeMap<String, String>, cwd: &Path) -> Result<Value, String> {
    let name = path.to_string_lossy();
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        return serde_yaml_ng::from_str(&text).map_err(|e| format!("invalid YAML: {e}"));
    }
    if name.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        return match serde_json::from_str(&text) {
            Ok(v) => Ok(v),
            // PM2 evaluates .json files as a JavaScript expression, so
            // comments and trailing commas work there; give node a go
            // before reporting the strict parser's error.
            Err(strict) => match which("node", env, cwd) {
                Some(_) => run_node(Input::File(path), env, cwd, true, NODE_TIME_LIMIT)
                    .map_err(|_| format!("invalid JSON: {strict}")),
                None => Err(format!("invalid JSON: {strict}")),
            },
        };
    }
    run_node(Input::File(path), env, cwd, false, NODE_TIME_LIMIT)
}

/// Reads a config given as text (`rsup start -`): JSON, else, as PM2
/// evaluates what it is piped, a JavaScript expression.
pub fn evaluate_json_text(
    text: &str,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(strict) => match which("node", env, cwd) {
            Some(_) => run_node(Input::Text(text), env, cwd, true, NODE_TIME_LIMIT)
                .map_err(|_| format!("invalid JSON: {strict}")),
            None => Err(format!("invalid JSON: {strict}")),
        },
    }
}

/// The loader for JSON that only node can read: PM2 evaluates
/// `(<contents>)` as an expression. It reads the file named, else stdin.
const JSON_EXPRESSION_LOADER: &str = r#"
const fs = require('fs'), vm = require('vm');
const RESULT = process.env.RSUP_CONFIG_RESULT_MARK;
const text = fs.readFileSync(process.argv.length > 1 ? process.argv[1] : 0, 'utf8');
// The newline ends a `//` comment on the last line before the parenthesis.
const value = vm.runInNewContext('(' + text + '\n)', {}, { timeout: 1000 });
process.stdout.write(RESULT + JSON.stringify(value), () => process.exit(0));
"#;

/// What node reads: a file, or text given on its stdin.
#[derive(Clone, Copy)]
enum Input<'a> {
    File(&'a Path),
    Text(&'a str),
}

fn run_node(
    input: Input,
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
    let mut command = Command::new(node);
    command.arg("-e").arg(loader);
    if let Input::File(path) = input {
        command.arg(path);
    }
    let mut child = command
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .env("RSUP_CONFIG_RESULT_MARK", RESULT_MARK)
        .env("RSUP_CONFIG_ERROR_MARK", ERROR_MARK)
        .stdin(match input {
            Input::File(_) => Stdio::null(),
            Input::Text(_) => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if let (Input::Text(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // On a thread: a text larger than the pipe must not block us while
        // node has not read it yet; node's exit ends the write.
        let text = text.to_string();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(text.as_bytes());
        });
    }

    let stdout = Drained::start(Box::new(child.stdout.take().expect("piped")));
    let stderr = Drained::start(Box::new(child.stderr.take().expect("piped")));

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
    let stdout = stdout.text();
    let stderr = stderr.text();

    if status.success() {
        if let Some(at) = stdout.rfind(RESULT_MARK) {
            return serde_json::from_str(&stdout[at + RESULT_MARK.len()..])
                .map_err(|e| format!("node printed invalid JSON: {e}"));
        }
    }
    Err(node_error(&stderr).unwrap_or_else(|| format!("node exited with {status}")))
}

/// A pipe read to its end on a thread, so a chatty config cannot fill it
/// and stall while we wait for node to exit.
struct Drained {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

/// How long to wait, once node has exited, for its pipes to close: a
/// process the config started in the background may hold them open for
/// as long as it lives, and must not hold up `rsup start`.
const PIPE_GRACE: Duration = Duration::from_millis(200);

impl Drained {
    fn start(mut pipe: Box<dyn Read + Send>) -> Drained {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let into = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                into.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(());
        });
        Drained { buf, done }
    }

    /// What the pipe carried, once it closed or the grace ran out.
    fn text(self) -> String {
        let _ = self.done.recv_timeout(PIPE_GRACE);
        let buf = self.buf.lock().unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    }
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
    fn text_strict_and_lenient() {
        let dir = tempfile::tempdir().unwrap();
        let v = evaluate_json_text(r#"[{"script":"a.js"}]"#, &env(), dir.path()).unwrap();
        assert_eq!(v[0]["script"], "a.js");
        let v = evaluate_json_text("[{ script: 'a.js', }] // piped", &env(), dir.path()).unwrap();
        assert_eq!(v[0]["script"], "a.js");
        let e = evaluate_json_text("[{ script: ", &env(), dir.path()).unwrap_err();
        assert!(e.starts_with("invalid JSON: "), "{e}");
    }

    #[test]
    fn hanging_config_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.config.js");
        std::fs::write(&path, "while (true) {}").unwrap();
        let started = Instant::now();
        let e = run_node(
            Input::File(&path),
            &env(),
            dir.path(),
            false,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e, "node did not finish within 0.3 s");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_background_child_holding_stdout_does_not_hold_up_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let text = format!(
            "const c = require('child_process').spawn('sleep', ['1000'], \
               {{ stdio: ['ignore', 'inherit', 'inherit'], detached: true }});\n\
             require('fs').writeFileSync({:?}, String(c.pid)); c.unref();\n\
             module.exports = {{ apps: [{{ name: 'a', script: 'a.js' }}] }};",
            pid_file
        );
        let path = dir.path().join("bg.config.js");
        std::fs::write(&path, text).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (p, d) = (path.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let _ = tx.send(run_node(
                Input::File(&p),
                &env(),
                &d,
                false,
                NODE_TIME_LIMIT,
            ));
        });
        // A hang check, not a timing claim: without the grace this waits
        // for the 1000 s sleep.
        let got = rx.recv_timeout(Duration::from_secs(60));
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let v = got
            .expect("the answer came while the child still ran")
            .unwrap();
        assert_eq!(v["apps"][0]["name"], "a");
    }

    #[test]
    fn a_function_export_and_a_promise_that_never_settles_are_named() {
        let e = eval("f.config.js", "module.exports = () => ({ apps: [] });").unwrap_err();
        assert!(e.contains("exports a function"), "{e}");
        let e = eval("p.config.js", "module.exports = new Promise(() => {});").unwrap_err();
        assert!(e.contains("never settled"), "{e}");
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
