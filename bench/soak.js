'use strict';

// Soak: the express app (bench/app) under rsup in cluster mode (2
// instances, --wait-ready), a steady stream of keep-alive requests for the
// whole run, and faults spread over it: reloads, instance crashes (SIGKILL
// and SIGSEGV to an instance pid), `rsup update`s (the daemon re-executes
// itself in place, keeping every process) and one SIGKILL of the daemon, after
// which its keeper starts the next daemon, which takes the same processes
// over, and a reload follows at once. Prints, per phase, requests and failed requests by
// kind; the daemon's open descriptors and RSS at the start and the end (the
// killed daemon's and the new one's apart); whether every reload exited 0.
// Prints figures; asserts nothing. Exits non-zero only when its own setup
// fails (build, start, the app never serving).
//
// Run through soak.sh, which builds rsup and the addon and installs express
// first. Settings (environment):
//   DURATION=300       seconds of load: warm-up, faults, settle
//   RELOADS=50         `rsup reload <app>` runs
//   CRASHES=10         instance crashes: the first half SIGKILL, the rest
//                      SIGSEGV, alternating, each sent with kill(2) to the
//                      pid of one instance (instances taken in turn)
//   UPDATES=2          `rsup update` runs, at a quarter and three quarters
//   DAEMON_KILLS=1     SIGKILLs of the daemon (0 or 1), halfway through
//   RATE=200           requests per second, started on a fixed schedule
//   CONNECTIONS=16     keep-alive sockets in the client's pool; a request
//                      due while all of them are busy is counted as not sent
//   REQ_TIMEOUT_MS=5000  a request unanswered after this is a timeout
//   WARMUP=10 SETTLE=20  seconds of load without faults at the start and
//                      the end; the daemon is measured after each
//   GRACE_MS=1000      a request that ends up to this long after a fault
//                      has recovered still counts to that fault's phase
//   WORK_MS=3          how long the app's /work route waits
//   PORT=18300         the app's port, on 127.0.0.1
//   RSUP=path          rsup binary (default target/release/rsup, or
//                      $CARGO_TARGET_DIR/release/rsup)
//   RSUP_PRELOAD=path  rsup's Node preload (default npm/rsup/preload.js)
//   SOAK_HOME=dir      the private RSUP_HOME (default: a new temporary one)
//   KEEP_HOME=1        keep RSUP_HOME (logs, state) after the run

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { num, sleep, median, createRun } = require('./lib/common');

const BENCH = __dirname;
const REPO = path.resolve(BENCH, '..');
const APP = path.join(BENCH, 'app', 'app.js');
const NAME = 'soak';

const DURATION = num('DURATION', 300);
const RELOADS = num('RELOADS', 50);
const CRASHES = num('CRASHES', 10);
const UPDATES = num('UPDATES', 2);
const DAEMON_KILLS = Math.min(1, num('DAEMON_KILLS', 1));
const RATE = num('RATE', 200);
const CONNECTIONS = Math.max(1, num('CONNECTIONS', 16));
const REQ_TIMEOUT_MS = num('REQ_TIMEOUT_MS', 5000);
const WARMUP = num('WARMUP', 10);
const SETTLE = num('SETTLE', 20);
const GRACE_MS = num('GRACE_MS', 1000);
const WORK_MS = num('WORK_MS', 3);
const PORT = num('PORT', 18300);
const HOST = '127.0.0.1';
const TARGET_DIR = process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
const RSUP = path.resolve(process.env.RSUP || path.join(TARGET_DIR, 'release', 'rsup'));
const RSUP_PRELOAD = path.resolve(
  process.env.RSUP_PRELOAD || path.join(REPO, 'npm', 'rsup', 'preload.js'),
);
// Every process the run starts (CLI, daemon, instances) carries this in its
// environment, so that cleanup can find them all, even those of a killed
// daemon; soak.sh does the same scan if this script itself dies.
const RUN_ID = process.env.RSUP_SOAK_RUN || crypto.randomBytes(6).toString('hex');
// The whole run ends by this deadline, whatever happens.
const HARD_LIMIT_MS = (DURATION + 180) * 1000;

let HOME = null;
const children = new Set();
const seen = new Map(); // pid -> start time (/proc/<pid>/stat), every daemon and instance seen
let stopping = false;
const runAny = createRun({ cwd: BENCH, children, stopping: () => stopping, signal: 'SIGKILL' });
// Commands run with the soak's own RSUP_HOME unless told otherwise.
const run = (cmd, args, opts = {}) => runAny(cmd, args, { env: rsupEnv(), ...opts });
let cleaningUp = null;

const log = (...a) => console.error(`[soak ${((Date.now() - (T0 || Date.now())) / 1000).toFixed(1)}s]`, ...a);
let T0 = 0;

class SetupError extends Error {}

// ---- processes ------------------------------------------------------------

function rsupEnv() {
  return {
    ...process.env,
    RSUP_HOME: HOME,
    RSUP_PRELOAD,
    RSUP_SOAK_RUN: RUN_ID,
    PORT: String(PORT),
    HOST,
    WORK_MS: String(WORK_MS),
  };
}


const rsup = (args, timeoutMs) => run(RSUP, args, { timeoutMs });
const tail = (r, n = 5) => (r.stderr || r.stdout || '').trim().split('\n').slice(-n).join(' | ');

function startTime(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return null;
  }
}

function remember(pid) {
  if (pid && !seen.has(pid)) {
    const st = startTime(pid);
    if (st) seen.set(pid, st);
  }
}

// The state letter of /proc/<pid>/stat ('R', 'S', 'Z' ...), null if gone.
function procState(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

// Running, not a zombie waiting for its parent (or init) to reap it.
const alive = (pid) => {
  const st = procState(pid);
  return st !== null && st !== 'Z';
};

async function jlist() {
  const r = await rsup(['jlist', '--native'], 20_000);
  if (r.code !== 0) return null;
  try {
    const list = JSON.parse(r.stdout).filter((p) => p.name === NAME);
    for (const p of list) remember(p.pid);
    return list;
  } catch {
    return null;
  }
}

function daemonPid() {
  try {
    const pid = Number(fs.readFileSync(path.join(HOME, 'rsup.pid'), 'utf8').trim()) || null;
    remember(pid);
    return pid;
  } catch {
    return null;
  }
}

function daemonReading(pid, when) {
  const r = { pid, when, at: Date.now() - T0, fds: NaN, rssKb: NaN, hwmKb: NaN };
  try {
    r.fds = fs.readdirSync(`/proc/${pid}/fd`).length;
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = (k) => {
      const x = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
      return x ? Number(x[1]) : NaN;
    };
    r.rssKb = m('VmRSS');
    r.hwmKb = m('VmHWM');
  } catch {}
  return r;
}

// Every process whose environment carries this run's marker.
function marked() {
  const out = [];
  const needle = Buffer.from(`\0RSUP_SOAK_RUN=${RUN_ID}\0`);
  const first = Buffer.from(`RSUP_SOAK_RUN=${RUN_ID}\0`);
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${d}/environ`);
      if (env.includes(needle) || env.subarray(0, first.length).equals(first)) out.push(Number(d));
    } catch {}
  }
  return out;
}

// ---- load -------------------------------------------------------------------

// Open-loop load: RATE requests a second on a fixed schedule over a pool of
// CONNECTIONS keep-alive sockets. Each request is kept as [start, end, kind]
// (ms since T0), kind 'ok', 'http <status>', an error code, or 'not sent'.
class Load {
  constructor() {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    this.records = [];
    this.inflight = 0;
    this.issued = 0;
    this.timer = null;
    this.done = null;
  }

  start() {
    this.t0 = performance.now();
    this.timer = setInterval(() => this.tick(), 5);
  }

  tick() {
    const due = Math.floor(((performance.now() - this.t0) * RATE) / 1000);
    while (this.issued < due) {
      this.issued++;
      if (this.inflight >= CONNECTIONS) {
        const t = Date.now() - T0;
        this.records.push([t, t, 'not sent']);
      } else {
        this.fire();
      }
    }
  }

  fire() {
    const t = Date.now() - T0;
    this.inflight++;
    let settled = false;
    const finish = (kind) => {
      if (settled) return;
      settled = true;
      this.inflight--;
      this.records.push([t, Date.now() - T0, kind]);
      if (this.done && this.inflight === 0) this.done();
    };
    const req = http.get({ host: HOST, port: PORT, path: '/work', agent: this.agent }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode >= 200 && res.statusCode < 300 ? 'ok' : `http ${res.statusCode}`));
      res.on('error', (e) => finish(errKind(e)));
      res.on('aborted', () => finish('aborted'));
    });
    req.setTimeout(REQ_TIMEOUT_MS, () => {
      finish('timeout');
      req.destroy();
    });
    req.on('error', (e) => finish(errKind(e)));
  }

  // Stops starting requests and waits for those in flight.
  async stop() {
    clearInterval(this.timer);
    if (this.inflight > 0) {
      await Promise.race([new Promise((r) => (this.done = r)), sleep(REQ_TIMEOUT_MS + 1000)]);
    }
    this.agent.destroy();
  }
}

function errKind(e) {
  if (e && e.message === 'socket hang up') return 'socket hang up';
  return (e && e.code) || 'error';
}

// ---- faults -----------------------------------------------------------------

// The fault windows: [start, end] in ms since T0, end when it has recovered.
const windows = [];

async function waitOnline(pred, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && !stopping) {
    const list = await jlist();
    if (list && list.length >= 2 && list.every((p) => p.status === 'online' && p.pid) && pred(list)) return list;
    await sleep(100);
  }
  return null;
}

async function doReload() {
  const before = (await jlist()) || [];
  const w = { phase: 'reload', start: Date.now() - T0 };
  const r = await rsup(['reload', NAME], 120_000);
  w.end = Date.now() - T0;
  w.code = r.code;
  w.ms = r.ms;
  if (r.code !== 0) w.note = `reload exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${tail(r)}`;
  const after = (await jlist()) || [];
  const old = new Set(before.map((p) => p.pid));
  w.replaced = after.length === before.length && after.length > 0 && after.every((p) => !old.has(p.pid));
  windows.push(w);
  if (w.note) log(w.note);
  return w;
}

async function doCrash(signal, index) {
  const list = await jlist();
  const victim = list && list.find((p) => p.instance === index % 2) || (list && list[0]);
  if (!victim || !victim.pid) {
    log(`crash ${signal}: no instance to crash`);
    windows.push({ phase: `crash ${signal}`, start: Date.now() - T0, end: Date.now() - T0, note: 'no instance' });
    return;
  }
  const w = { phase: `crash ${signal}`, start: Date.now() - T0, pid: victim.pid, id: victim.id };
  try {
    process.kill(victim.pid, signal);
  } catch (e) {
    w.note = `kill ${signal} ${victim.pid}: ${e.code}`;
  }
  const back = await waitOnline(
    (l) => l.some((p) => p.id === victim.id && p.pid !== victim.pid),
    30_000,
  );
  w.end = Date.now() - T0;
  w.ms = w.end - w.start;
  if (!back) w.note = 'not online again within 30 s';
  else {
    const p = back.find((x) => x.id === victim.id);
    w.exit = p && p.last_exit ? p.last_exit.signal || `code ${p.last_exit.code}` : 'unknown';
  }
  windows.push(w);
  if (w.note) log(`crash ${signal}: ${w.note}`);
}

async function doDaemonKill(readings) {
  const pid = daemonPid();
  const before = (await jlist()) || [];
  readings.push(daemonReading(pid, 'before the kill'));
  const w = { phase: 'daemon SIGKILL', start: Date.now() - T0, oldPid: pid };
  try {
    process.kill(pid, 'SIGKILL');
  } catch (e) {
    w.note = `kill -9 ${pid}: ${e.code}`;
  }
  // The keeper starts the next daemon, which takes the same processes
  // over; a reload follows at once.
  const old = new Set(before.map((p) => p.pid));
  const deadline = Date.now() + 60_000;
  let back = null;
  while (!back && Date.now() < deadline && !stopping) {
    const now = daemonPid();
    const list = now && now !== pid ? await jlist() : null;
    if (list && list.length === before.length && list.every((p) => p.status === 'online')) back = list;
    else await sleep(5);
  }
  w.servedMs = Date.now() - T0 - w.start;
  w.newPid = daemonPid();
  w.kept = Boolean(back) && back.every((p) => old.has(p.pid));
  if (!back) w.note = 'not online again within 60 s';
  const reload = await rsup(['reload', NAME], 120_000);
  w.reloadCode = reload.code;
  if (reload.code !== 0) w.note = (w.note ? w.note + '; ' : '') + `reload exit ${reload.code}: ${tail(reload)}`;
  w.end = Date.now() - T0;
  w.ms = w.end - w.start;
  w.leftOver = before.map((p) => p.pid).filter(alive);
  w.zombies = before.map((p) => p.pid).filter((p) => procState(p) === 'Z');
  windows.push(w);
  log(`daemon ${pid} killed; new daemon ${w.newPid} served after ${(w.servedMs / 1000).toFixed(3)} s, processes kept: ${w.kept}; reload after it: exit ${w.reloadCode}`);
  return w;
}

// `rsup update`: the daemon re-executes itself in place; every pid, the
// daemon's included, and every id stays.
async function doUpdate(readings) {
  const pid = daemonPid();
  const before = (await jlist()) || [];
  readings.push(daemonReading(pid, 'before an update'));
  const w = { phase: 'update', start: Date.now() - T0, oldPid: pid };
  const r = await rsup(['update'], 120_000);
  w.end = Date.now() - T0;
  w.code = r.code;
  w.ms = r.ms;
  if (r.code !== 0) w.note = `update exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${tail(r)}`;
  w.newPid = daemonPid();
  const after = (await jlist()) || [];
  const old = new Set(before.map((p) => p.pid));
  const ident = (l) => l.map((p) => `${p.id}:${p.instance}`).sort().join(' ');
  w.samePids = after.length === before.length && after.length > 0 && after.every((p) => old.has(p.pid));
  w.kept = ident(after) === ident(before);
  w.sameDaemon = w.newPid === pid;
  windows.push(w);
  if (w.note) log(w.note);
  readings.push(daemonReading(w.newPid, 'after an update'));
  return w;
}

// RELOADS reloads with CRASHES crashes spread evenly among them, UPDATES
// updates at a quarter and three quarters (more in between), the daemon
// kill halfway.
function schedule() {
  const m = RELOADS + CRASHES;
  const events = [];
  let crash = 0;
  for (let k = 0; k < m; k++) {
    if (Math.floor(((k + 1) * CRASHES) / m) > Math.floor((k * CRASHES) / m)) {
      const signal = crash % 2 === 0 ? 'SIGKILL' : 'SIGSEGV';
      events.push({ kind: 'crash', signal, index: crash });
      crash++;
    } else events.push({ kind: 'reload' });
  }
  for (let u = 0; u < UPDATES; u++) {
    const at = UPDATES === 1 ? 0.25 : 0.25 + (0.5 * u) / (UPDATES - 1);
    events.splice(Math.floor(events.length * at), 0, { kind: 'update' });
  }
  if (DAEMON_KILLS) events.splice(Math.floor(events.length / 2), 0, { kind: 'daemon' });
  return events;
}

// ---- report -------------------------------------------------------------------

const PHASES = ['steady', 'reload', 'update', 'crash SIGKILL', 'crash SIGSEGV', 'daemon SIGKILL'];

function classify(records) {
  const ws = [...windows].sort((a, b) => a.start - b.start);
  const phases = Object.fromEntries(PHASES.map((p) => [p, { requests: 0, failed: 0, notSent: 0, kinds: {} }]));
  const daemonFails = [];
  for (const [s, e, kind] of records) {
    // A request belongs to a fault if its life overlaps the fault's window.
    const w = ws.find((x) => s <= x.end + GRACE_MS && e >= x.start);
    const phase = w ? w.phase : 'steady';
    const p = phases[phase];
    if (kind === 'not sent') {
      p.notSent++;
      continue;
    }
    p.requests++;
    if (kind !== 'ok') {
      p.failed++;
      p.kinds[kind] = (p.kinds[kind] || 0) + 1;
      if (phase === 'daemon SIGKILL') daemonFails.push(e);
    }
  }
  return { phases, daemonFails };
}

function pad(rows) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 || i === r.length - 1 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ').trimEnd();
  return [line(rows[0]), w.map((n) => '-'.repeat(n)).join('  '), ...rows.slice(1).map(line)];
}

const mb = (kb) => (Number.isFinite(kb) ? (kb / 1024).toFixed(1) : '-');
const sec = (ms) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');

function report(meta, records, readings, samples, finalList, elapsedMs) {
  const { phases, daemonFails } = classify(records);
  const out = [meta, ''];
  const count = (ph) => windows.filter((w) => w.phase === ph).length;
  const rows = [['phase', 'faults', 'requests', 'failed', 'not sent', 'failed by kind']];
  const total = { requests: 0, failed: 0, notSent: 0 };
  for (const ph of PHASES) {
    const p = phases[ph];
    total.requests += p.requests;
    total.failed += p.failed;
    total.notSent += p.notSent;
    const kinds = Object.entries(p.kinds).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    rows.push([ph, ph === 'steady' ? '-' : count(ph), p.requests, p.failed, p.notSent, kinds || '-']);
  }
  rows.push(['total', windows.length, total.requests, total.failed, total.notSent, '']);
  out.push(...pad(rows));
  out.push('');

  // The daemon: each pid from its first reading to its last.
  const byPid = new Map();
  for (const r of readings) {
    if (!byPid.has(r.pid)) byPid.set(r.pid, []);
    byPid.get(r.pid).push(r);
  }
  const drows = [['daemon pid', 'from', 'to', 'fds', 'RSS MB', 'peak RSS MB (VmHWM)']];
  for (const [pid, rs] of byPid) {
    const a = rs[0];
    const b = rs[rs.length - 1];
    const sm = samples.filter((s) => s.pid === pid && Number.isFinite(s.rssKb));
    const fdRange = sm.length ? ` (${Math.min(...sm.map((s) => s.fds))}..${Math.max(...sm.map((s) => s.fds))})` : '';
    drows.push([
      pid, `${a.when} (${sec(a.at)} s)`, `${b.when} (${sec(b.at)} s)`,
      `${a.fds} -> ${b.fds}${fdRange}`, `${mb(a.rssKb)} -> ${mb(b.rssKb)}`, mb(b.hwmKb),
    ]);
  }
  out.push(...pad(drows));
  out.push('(fds in parentheses: the range over samples every 5 s, in the middle of faults too)');
  out.push('');

  const reloads = windows.filter((w) => w.phase === 'reload');
  const bad = reloads.filter((w) => w.code !== 0);
  out.push(
    `reloads: ${reloads.length}, exit 0: ${reloads.length - bad.length}` +
      `${bad.length ? ' (NOT all)' : ' (all)'}, replaced every pid: ${reloads.filter((w) => w.replaced).length}; ` +
      `time median ${sec(median(reloads.map((w) => w.ms)))} s, max ${sec(Math.max(...reloads.map((w) => w.ms)))} s`,
  );
  for (const w of bad) out.push(`  at ${sec(w.start)} s: ${w.note}`);
  for (const w of windows.filter((x) => x.phase === 'update')) {
    out.push(
      `update at ${sec(w.start)} s: exit ${w.code}, daemon pid ${w.oldPid} -> ${w.newPid}` +
        `${w.sameDaemon ? ' (the same)' : ' (CHANGED)'}, every instance pid kept: ${w.samePids ? 'yes' : 'NO'}, ` +
        `ids kept: ${w.kept ? 'yes' : 'NO'}; took ${sec(w.ms)} s`,
    );
    if (w.note) out.push(`  ${w.note}`);
  }
  for (const sig of ['SIGKILL', 'SIGSEGV']) {
    const cs = windows.filter((w) => w.phase === `crash ${sig}`);
    if (!cs.length) continue;
    const exits = {};
    for (const w of cs) exits[w.exit || w.note] = (exits[w.exit || w.note] || 0) + 1;
    out.push(
      `crashes by ${sig} (kill(2) to an instance pid): ${cs.length}; exit the daemon saw: ` +
        `${Object.entries(exits).map(([k, n]) => `${k} x${n}`).join(', ')}; online again after median ` +
        `${sec(median(cs.map((w) => w.ms)))} s, max ${sec(Math.max(...cs.map((w) => w.ms)))} s`,
    );
  }
  for (const w of windows.filter((x) => x.phase === 'daemon SIGKILL')) {
    const span = daemonFails.length ? `${sec(Math.min(...daemonFails))}..${sec(Math.max(...daemonFails))} s` : 'none';
    out.push(
      `daemon SIGKILL at ${sec(w.start)} s: pid ${w.oldPid} -> ${w.newPid} (started by the keeper), serving ` +
        `${sec(w.servedMs)} s after the kill with the same processes: ${w.kept ? 'yes' : 'no'}; a reload right after it: exit ${w.reloadCode}; ` +
        `${sec(w.ms)} s from the kill to the reload's end; failed requests ended between ${span}`,
    );
    if (w.leftOver && w.leftOver.length) out.push(`  processes of the killed daemon still running after the reload: ${w.leftOver.join(' ')}`);
    if (w.zombies && w.zombies.length) out.push(`  processes of the killed daemon exited, not yet reaped (zombies) after the reload: ${w.zombies.join(' ')}`);
    if (w.note) out.push(`  ${w.note}`);
  }
  for (const w of windows.filter((x) => x.phase.startsWith('crash') && x.note)) out.push(`  crash at ${sec(w.start)} s: ${w.note}`);
  if (finalList) {
    out.push(
      `at the end: ${finalList.map((p) => `id ${p.id} ${p.status} pid ${p.pid} restarts ${p.restarts}`).join('; ')}`,
    );
  }
  const warnings = daemonWarnings();
  if (warnings.length) {
    out.push(`daemon log, warnings and errors (${warnings.length}${warnings.length > 20 ? ', first 20' : ''}):`);
    for (const l of warnings.slice(0, 20)) out.push(`  ${l}`);
  }
  const late = windows.filter((w) => w.end > (DURATION - SETTLE) * 1000).length;
  if (late) out.push(`${late} fault(s) ended after the planned fault period (the run grew to ${sec(elapsedMs)} s)`);
  return { text: out.join('\n'), phases };
}

// WARN and ERROR lines of RSUP_HOME/rsup.log, their time made relative to
// the start of the load.
function daemonWarnings() {
  let text = '';
  try {
    text = fs.readFileSync(path.join(HOME, 'rsup.log'), 'utf8');
  } catch {
    return [];
  }
  const out = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^(\S+)\s+(WARN|ERROR)\s+(.*)$/);
    if (!m) continue;
    const t = Date.parse(m[1]);
    out.push(`${Number.isFinite(t) ? `${sec(t - T0)} s` : m[1]} ${m[2]} ${m[3].slice(0, 200)}`);
  }
  return out;
}

// ---- cleanup ------------------------------------------------------------------

async function cleanup() {
  if (cleaningUp) return cleaningUp;
  stopping = true;
  cleaningUp = (async () => {
    for (const c of children) c.kill('SIGKILL');
    if (!HOME) return;
    await run(RSUP, ['kill'], { timeoutMs: 20_000, cleanup: true });
    // Whatever is left: daemons first, so nothing restarts what follows.
    const d = daemonPid();
    const pids = [...(d ? [d] : []), ...seen.keys()];
    for (let pass = 0; pass < 3; pass++) {
      for (const pid of [...new Set([...pids, ...marked()])]) {
        if (seen.has(pid) && startTime(pid) !== seen.get(pid)) continue; // pid reused
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      await sleep(100);
      if (!marked().length) break;
    }
    if (process.env.KEEP_HOME) log(`RSUP_HOME kept in ${HOME}`);
    else fs.rmSync(HOME, { recursive: true, force: true });
  })();
  return cleaningUp;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---- main ---------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(RSUP)) throw new SetupError(`no rsup binary at ${RSUP}`);
  if (!fs.existsSync(RSUP_PRELOAD)) throw new SetupError(`no rsup preload at ${RSUP_PRELOAD}`);
  HOME = process.env.SOAK_HOME || fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-soak-'));
  fs.mkdirSync(HOME, { recursive: true, mode: 0o700 });
  T0 = Date.now();
  const watchdog = setTimeout(() => {
    log(`the run passed its limit of ${HARD_LIMIT_MS / 1000} s: stopping`);
    cleanup().finally(() => process.exit(1));
  }, HARD_LIMIT_MS);
  watchdog.unref();

  const version = (await run(RSUP, ['--version'])).stdout.trim();
  const start = await rsup(['start', APP, '--name', NAME, '-i', '2', '--wait-ready'], 60_000);
  if (start.code !== 0) throw new SetupError(`rsup start failed: ${tail(start)}`);
  if (!(await waitOnline(() => true, 30_000))) throw new SetupError('the app is not online after 30 s');
  const probe = await new Promise((resolve) => {
    const req = http.get({ host: HOST, port: PORT, path: '/work', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(0));
  });
  if (probe !== 200) throw new SetupError(`the app does not answer on ${HOST}:${PORT} (${probe})`);

  const readings = [];
  const samples = [];
  const sampler = setInterval(() => {
    const pid = daemonPid();
    if (pid && alive(pid)) {
      const r = daemonReading(pid, 'sample');
      if (Number.isFinite(r.rssKb)) samples.push(r);
    }
  }, 5000);

  const load = new Load();
  T0 = Date.now();
  log(`load ${RATE}/s over ${CONNECTIONS} connections for ${DURATION} s; RSUP_HOME ${HOME}`);
  load.start();
  await sleep(WARMUP * 1000);
  readings.push(daemonReading(daemonPid(), 'after warm-up'));

  const events = schedule();
  const faultEnd = (DURATION - SETTLE) * 1000;
  const slot = (faultEnd - WARMUP * 1000) / Math.max(1, events.length);
  let done = 0;
  for (let i = 0; i < events.length && !stopping; i++) {
    const at = WARMUP * 1000 + slot * (i + 0.5);
    const now = Date.now() - T0;
    // Faults never overlap: one late start pushes the next back, with a
    // gap so that each window's grace ends before the next fault.
    await sleep(Math.max(at - now, GRACE_MS + 500));
    const ev = events[i];
    if (ev.kind === 'reload') await doReload();
    else if (ev.kind === 'crash') await doCrash(ev.signal, ev.index);
    else if (ev.kind === 'update') await doUpdate(readings);
    else {
      await doDaemonKill(readings);
      await sleep(GRACE_MS + 1000);
      readings.push(daemonReading(daemonPid(), 'after recovery'));
    }
    if (++done % 10 === 0) log(`${done}/${events.length} faults`);
  }
  const left = DURATION * 1000 - (Date.now() - T0);
  await sleep(Math.max(left, SETTLE * 1000));
  readings.push(daemonReading(daemonPid(), 'end'));
  clearInterval(sampler);
  const elapsedMs = Date.now() - T0;
  await load.stop();
  const finalList = await jlist();

  const meta = [
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0].model.trim()}), ` +
      `Linux ${os.release()}, Node ${process.version}, ${version}`,
    `${NAME}: bench/app -i 2 --wait-ready on ${HOST}:${PORT}, /work waits ${WORK_MS} ms; ` +
      `load ${RATE} req/s over ${CONNECTIONS} keep-alive connections for ${sec(elapsedMs)} s ` +
      `(warm-up ${WARMUP} s, settle ${SETTLE} s), request timeout ${REQ_TIMEOUT_MS} ms`,
    `faults: ${RELOADS} reloads, ${UPDATES} updates, ${CRASHES} crashes, ${DAEMON_KILLS} daemon SIGKILL; a request counts to a fault ` +
      `when its life overlaps the fault (start to recovery + ${GRACE_MS} ms)`,
  ].join('\n');
  const { text, phases } = report(meta, load.records, readings, samples, finalList, elapsedMs);
  console.log(text);

  fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  fs.writeFileSync(path.join(BENCH, 'results', 'soak-latest.txt'), text + '\n');
  fs.writeFileSync(
    path.join(BENCH, 'results', 'soak-latest.json'),
    JSON.stringify({ version, phases, windows, readings, samples, finalList }, null, 2) + '\n',
  );
  await cleanup();
}

main().then(
  () => process.exit(0),
  async (err) => {
    log(err instanceof SetupError ? `setup failed: ${err.message}` : err && err.stack ? err.stack : err);
    await cleanup();
    process.exit(1);
  },
);
