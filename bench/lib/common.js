'use strict';

// What every benchmark script here needs: its settings from the
// environment, a pause, a median, a process's memory and a pid file, and
// for the side-by-side ones, the run they share (createSession).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// A non-negative number from the environment variable `name`, `fallback`
// when unset; `integer` insists on a whole number.
function num(name, fallback, { integer = false } = {}) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  const ok = integer ? Number.isInteger(n) : Number.isFinite(n);
  if (!ok || n < 0) throw new Error(`${name}=${v} is not a ${integer ? 'whole ' : ''}number`);
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The median of the finite values of `xs`; NaN when there are none.
function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Resident and peak memory of `pid` in kB (VmRSS, VmHWM); NaN when gone.
function memoryKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = s.match(/^VmRSS:\s+(\d+) kB/m);
    const hwm = s.match(/^VmHWM:\s+(\d+) kB/m);
    return { rss: rss ? Number(rss[1]) : NaN, hwm: hwm ? Number(hwm[1]) : NaN };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

// The pid in a pid file; null when there is none.
function readPid(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

// A `run(cmd, args, options)` that runs a command from `cwd` to completion
// and resolves with { code, sig, stdout, stderr, ms, timedOut }. Every child
// is kept in `children` while it runs, so that an exit of any kind can end
// them; once `stopping()` is true nothing more is started, except with
// `cleanup` (a daemon's `kill`), since a supervisor's command could launch
// a new daemon. Past `timeoutMs` the child gets `signal`, and SIGKILL 5 s
// later (wrk answers SIGINT with its report).
function createRun({ cwd, children, stopping, signal: defaultSignal = 'SIGTERM' }) {
  return function run(
    cmd,
    args,
    { env = process.env, timeoutMs = 60_000, signal = defaultSignal, cleanup = false } = {},
  ) {
    return new Promise((resolve) => {
      if (stopping() && !cleanup) {
        return resolve({ code: null, sig: null, stdout: '', stderr: 'interrupted', ms: NaN, timedOut: false });
      }
      const t0 = process.hrtime.bigint();
      const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      const out = [];
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (d) => out.push(d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill(signal);
        if (signal !== 'SIGKILL') setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }, timeoutMs);
      child.on('error', (err) => (stderr += String(err)));
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        children.delete(child);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        resolve({ code, sig, stdout: Buffer.concat(out).toString(), stderr, ms, timedOut });
      });
    });
  };
}

// Stops the daemon of each supervisor that has a state folder in `homes`
// (its `kill` command, then SIGKILL to the pid it had if that still runs),
// and removes the folder unless KEEP_HOME is set.
async function stopDaemons({ homes, supervisors, run, log, timeoutMs }) {
  for (const key of Object.keys(homes)) {
    const sup = supervisors[key];
    const pid = readPid(sup.pidFile());
    await run(sup.cmd, ['kill'], { env: sup.env(), timeoutMs, cleanup: true });
    if (pid) {
      try {
        process.kill(pid, 0);
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    if (process.env.KEEP_HOME) log(`${key} state kept in ${homes[key]}`);
    else fs.rmSync(homes[key], { recursive: true, force: true });
  }
}

// What one side-by-side run holds: the children it started, each
// supervisor's state folder (`homes`), its `run` (see createRun), whether
// it is `stopping`, and `cleanup`, which ends the children and stops the
// daemons (once; SIGINT, SIGTERM and SIGHUP run it too). `choose(only)`
// picks the supervisors (ONLY=pm2, rsup or both) and makes their folders.
// `supervisors` is a function, as the supervisors name the folders.
function createSession({ cwd, log, supervisors, signal, killTimeoutMs }) {
  const session = { children: new Set(), homes: {}, stopping: false };
  session.run = createRun({ cwd, children: session.children, stopping: () => session.stopping, signal });
  let cleaningUp = null;
  session.cleanup = () => {
    if (cleaningUp) return cleaningUp;
    session.stopping = true;
    cleaningUp = (async () => {
      for (const c of session.children) c.kill('SIGKILL');
      const { homes, run } = session;
      await stopDaemons({ homes, supervisors: supervisors(), run, log, timeoutMs: killTimeoutMs });
    })();
    return cleaningUp;
  };
  session.choose = (only) => {
    const wanted = only ? only.split(',') : ['pm2', 'rsup'];
    for (const key of wanted) {
      if (!supervisors()[key]) throw new Error(`ONLY=${only}: expected pm2, rsup or both`);
      session.homes[key] = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${key}-`));
    }
    return wanted;
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`${sig}: stopping the daemons`);
      session.cleanup().finally(() => process.exit(130));
    });
  }
  return session;
}

module.exports = { num, sleep, median, memoryKb, readPid, createRun, stopDaemons, createSession };
