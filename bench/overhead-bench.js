'use strict';

// What a supervisor costs each request: the smallest HTTP app
// (bench/hello/app.js, `res.end('ok')`) run bare with `node app.js`, under
// rsup (`rsup start`, one fork-mode instance, with its preload) and under
// PM2 (fork mode), measured with wrk in alternating rounds (bare, rsup,
// pm2, bare, rsup, pm2, ...). Each round starts a fresh process, warms it
// up, then measures keep-alive and `Connection: close` throughput. Prints
// the median req/s and p99 latency of each, and rsup/bare and pm2/bare
// (ratio of medians, and median of each round's own ratio), and the app's
// CPU time per request, which the machine's other load hardly moves, where
// req/s swings with it, and its CPU time at start (until it first answers)
// and while idle just after (IDLE seconds with no request). Also shows how
// each process was run: CPU affinity, nice, what its stdout is.
// Prints figures; asserts nothing.
//
// Run through overhead-bench.sh, which checks wrk, builds rsup and
// installs PM2 first. Settings (environment):
//   ROUNDS=5           rounds; each runs every mode once
//   DURATION=10        seconds of each keep-alive measurement
//   WARMUP=2           seconds of load before it, not counted
//   IDLE=10            seconds the app's CPU time is measured idle, right
//                      after it first answers (0: not measured)
//   CLOSE_DURATION=5   seconds of the `Connection: close` measurement (0: none)
//   THREADS=1 CONNECTIONS=20
//   PORT=18200         the app's port (one mode runs at a time)
//   MODES=bare,rsup,pm2  the modes, in round order; NAME=path adds rsup
//                      with the preload at path (to compare versions of it)
//   RSUP=path          rsup binary (default target/release/rsup)
//   RSUP_PRELOAD=path  rsup's Node preload (default npm/rsup/preload.js)
//   OUT=name           results file name under bench/results (default overhead)

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { num, sleep, median, createRun } = require('./lib/common');

const BENCH = __dirname;
const REPO = path.resolve(BENCH, '..');
const APP = path.join(BENCH, 'hello', 'app.js');

const extraModes = {}; // NAME -> preload, from MODES
const ROUNDS = num('ROUNDS', 5);
const DURATION = num('DURATION', 10);
const WARMUP = num('WARMUP', 2);
const IDLE = num('IDLE', 10);
const CLOSE_DURATION = num('CLOSE_DURATION', 5);
const THREADS = num('THREADS', 1);
const CONNECTIONS = num('CONNECTIONS', 20);
const PORT = num('PORT', 18200);
// NAME=path: rsup with the preload at path, to compare versions of it.
const MODES = (process.env.MODES || 'bare,rsup,pm2')
  .split(',')
  .filter(Boolean)
  .map((m) => {
    const [name, preload] = m.split('=');
    if (preload) extraModes[name] = path.resolve(preload);
    return name;
  });
const OUT = process.env.OUT || 'overhead';
const RSUP = path.resolve(process.env.RSUP || path.join(REPO, 'target', 'release', 'rsup'));
const RSUP_PRELOAD = path.resolve(
  process.env.RSUP_PRELOAD || path.join(REPO, 'npm', 'rsup', 'preload.js'),
);
const PM2 = path.join(BENCH, 'node_modules', '.bin', 'pm2');
const NAME = 'hello';

// Every process this script starts, so that an exit of any kind can end them.
const children = new Set();
const homes = {};
let cleaningUp = null;
let stopping = false;
const run = createRun({ cwd: BENCH, children, stopping: () => stopping });

const log = (...a) => console.error('[bench]', ...a);


function get(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function until(pred, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && !stopping) {
    if (await pred()) return true;
    await sleep(50);
  }
  return false;
}
const serving = () => until(async () => (await get(PORT)) === 200, 20_000);
const portClosed = () => until(async () => (await get(PORT, 300)) === 0, 10_000);

function jlistPid(out) {
  try {
    const list = JSON.parse(out.slice(out.indexOf('[')));
    const p = list.find((x) => x.name === NAME);
    return p ? p.pid : null;
  } catch {
    return null;
  }
}

const appEnv = { PORT: String(PORT), HOST: '127.0.0.1' };

// The three ways to run the app: start() resolves with its pid once it
// serves; stop() ends it and frees the port.
const modes = {
  bare: {
    async start() {
      const child = spawn(process.execPath, [APP], {
        env: { ...process.env, ...appEnv },
        cwd: BENCH,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.add(child);
      child.on('exit', () => children.delete(child));
      this.child = child;
      return child.pid;
    },
    async stop() {
      if (!this.child) return;
      const done = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      if (this.child.exitCode === null && this.child.signalCode === null) await done;
      this.child = null;
    },
  },
  rsup: rsupMode('rsup', RSUP_PRELOAD),
  pm2: {
    env: () => ({ ...process.env, ...appEnv, PM2_HOME: homes.pm2 }),
    async start() {
      const r = await run(PM2, ['start', APP, '--name', NAME], { env: this.env() });
      if (r.code !== 0) throw new Error(`pm2 start: ${(r.stderr || r.stdout).trim()}`);
      return jlistPid((await run(PM2, ['jlist'], { env: this.env() })).stdout);
    },
    async stop() {
      await run(PM2, ['delete', NAME], { env: this.env() });
    },
    async kill() {
      await run(PM2, ['kill'], { env: this.env(), timeoutMs: 20_000, cleanup: true });
    },
    pidFile: () => path.join(homes.pm2, 'pm2.pid'),
  },
};

// rsup with a given preload, in its own RSUP_HOME.
function rsupMode(key, preload) {
  return {
    preload,
    env: () => ({ ...process.env, ...appEnv, RSUP_HOME: homes[key], RSUP_PRELOAD: preload }),
    async start() {
      const r = await run(RSUP, ['start', APP, '--name', NAME], { env: this.env() });
      if (r.code !== 0) throw new Error(`rsup start: ${(r.stderr || r.stdout).trim()}`);
      return jlistPid((await run(RSUP, ['jlist'], { env: this.env() })).stdout);
    },
    async stop() {
      await run(RSUP, ['delete', NAME], { env: this.env() });
    },
    async kill() {
      await run(RSUP, ['kill'], { env: this.env(), timeoutMs: 20_000, cleanup: true });
    },
    pidFile: () => path.join(homes[key], 'rsup.pid'),
  };
}

function parseWrk(out) {
  const requests = out.match(/(\d+) requests in/);
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/);
  const p99 = out.match(/^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m);
  const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const unit = { us: 1e-3, ms: 1, s: 1e3 };
  return {
    requests: requests ? Number(requests[1]) : NaN,
    rps: rps ? Number(rps[1]) : NaN,
    p99ms: p99 ? Number(p99[1]) * unit[p99[2]] : NaN,
    errors: (non2xx ? Number(non2xx[1]) : 0) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

// Nanoseconds the process has spent on a CPU, all its threads together.
function cpuNs(pid) {
  let total = 0;
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {}
    }
  } catch {
    return NaN;
  }
  return total;
}

// wrk's figures, and the app's CPU time per request: unlike req/s, that
// hardly moves with what else the machine runs.
async function wrk(seconds, extra = [], pid = null) {
  const args = [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...extra, `http://127.0.0.1:${PORT}/`];
  const before = pid ? cpuNs(pid) : NaN;
  const r = parseWrk((await run('wrk', args, { timeoutMs: (seconds + 20) * 1000, signal: 'SIGINT' })).stdout);
  r.cpuUs = pid ? (cpuNs(pid) - before) / 1000 / r.requests : NaN;
  return r;
}

// The app's CPU time over `seconds` with no request, in microseconds per
// second.
async function idleCpu(pid, seconds) {
  const before = cpuNs(pid);
  await sleep(seconds * 1000);
  return (cpuNs(pid) - before) / 1000 / seconds;
}

// How the process runs: what could differ between modes besides the
// supervisor's code in it.
function describe(pid) {
  const read = (f) => {
    try {
      return fs.readFileSync(`/proc/${pid}/${f}`, 'utf8');
    } catch {
      return '';
    }
  };
  const status = read('status');
  const stat = read('stat');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const fd = (n) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${n}`).replace(/:\[\d+\]$/, '');
    } catch {
      return '-';
    }
  };
  const cmdline = read('cmdline').split('\0').filter(Boolean);
  return {
    cpus: (status.match(/^Cpus_allowed_list:\s+(.*)$/m) || [])[1] || '-',
    nice: fields[16] ?? '-',
    policy: fields[38] ?? '-',
    stdout: fd(1),
    stderr: fd(2),
    threads: (status.match(/^Threads:\s+(\d+)/m) || [])[1] || '-',
    argv: cmdline.map((a) => a.split(' ').map((w) => path.basename(w)).join(' ')).join(' '),
  };
}

async function cleanup() {
  if (cleaningUp) return cleaningUp;
  stopping = true;
  cleaningUp = (async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const key of Object.keys(homes)) {
      const mode = modes[key];
      let pid = null;
      try {
        pid = Number(fs.readFileSync(mode.pidFile(), 'utf8').trim()) || null;
      } catch {}
      await mode.kill();
      if (pid) {
        try {
          process.kill(pid, 0);
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
      fs.rmSync(homes[key], { recursive: true, force: true });
    }
  })();
  return cleaningUp;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b ? (a / b).toFixed(3) : '-');

async function main() {
  for (const [name, preload] of Object.entries(extraModes)) modes[name] = rsupMode(name, preload);
  for (const m of MODES) if (!modes[m]) throw new Error(`MODES: unknown mode ${m} (bare, rsup, pm2)`);
  for (const m of MODES) if (m !== 'bare') homes[m] = fs.mkdtempSync(path.join(os.tmpdir(), `overhead-${m}-`));
  if (MODES.includes('rsup') && !fs.existsSync(RSUP_PRELOAD)) log(`no rsup preload at ${RSUP_PRELOAD}`);
  if (!(await portClosed())) throw new Error(`port ${PORT} is in use`);

  const versions = {
    node: process.version,
    pm2: MODES.includes('pm2') ? require(path.join(BENCH, 'node_modules', 'pm2', 'package.json')).version : '-',
    rsup: MODES.some((m) => modes[m].preload) ? (await run(RSUP, ['--version'])).stdout.trim() : '-',
    wrk: (await run('wrk', ['-v'])).stdout.split('\n')[0].replace(/\s*Copyright.*/, '').trim(),
  };

  const rounds = []; // { mode, round, keep, close }
  const described = {};
  for (let round = 1; round <= ROUNDS && !stopping; round++) {
    for (const m of MODES) {
      const mode = modes[m];
      const pid = await mode.start();
      if (!(await serving())) throw new Error(`${m}: not serving on :${PORT}`);
      described[m] ??= pid ? describe(pid) : null;
      const startMs = pid ? cpuNs(pid) / 1e6 : NaN;
      const idleUsPerS = IDLE && pid ? await idleCpu(pid, IDLE) : NaN;
      if (WARMUP) await wrk(WARMUP);
      const keep = await wrk(DURATION, [], pid);
      const close = CLOSE_DURATION ? await wrk(CLOSE_DURATION, ['-H', 'Connection: close'], pid) : null;
      await mode.stop();
      if (!(await portClosed())) throw new Error(`${m}: port ${PORT} still answers after stop`);
      rounds.push({ mode: m, round, keep, close, startMs, idleUsPerS });
      log(
        `round ${round} ${m.padEnd(4)}: start ${fmt(startMs, 1)} cpu ms, idle ${fmt(idleUsPerS)} cpu us/s; ` +
          `${fmt(keep.rps)} req/s, p99 ${fmt(keep.p99ms, 2)} ms, ${fmt(keep.cpuUs, 2)} cpu us/req` +
          (close ? `; Connection: close ${fmt(close.rps)} req/s, ${fmt(close.cpuUs, 2)} cpu us/req` : '') +
          (keep.errors || (close && close.errors) ? ` (errors ${keep.errors}/${close ? close.errors : 0})` : ''),
      );
    }
  }

  const of = (m, f) => rounds.filter((r) => r.mode === m).map(f);
  const stats = {};
  for (const m of MODES) {
    stats[m] = {
      rps: median(of(m, (r) => r.keep.rps)),
      p99: median(of(m, (r) => r.keep.p99ms)),
      cpu: median(of(m, (r) => r.keep.cpuUs)),
      closeRps: median(of(m, (r) => (r.close ? r.close.rps : NaN))),
      closeCpu: median(of(m, (r) => (r.close ? r.close.cpuUs : NaN))),
      startMs: median(of(m, (r) => r.startMs)),
      idle: median(of(m, (r) => r.idleUsPerS)),
      all: of(m, (r) => Math.round(r.keep.rps)),
    };
  }
  // Each round's own ratio: drift in the machine's load between rounds
  // touches both sides of it alike.
  const pairRatio = (m, f) =>
    median(
      rounds
        .filter((r) => r.mode === m)
        .map((r) => {
          const b = rounds.find((x) => x.mode === 'bare' && x.round === r.round);
          return b ? f(r) / f(b) : NaN;
        }),
    );

  const out = [];
  out.push(
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${os.cpus()[0].model.trim()}), ` +
      `${versions.node}, pm2 ${versions.pm2}, ${versions.rsup}, ${versions.wrk}`,
  );
  out.push(
    `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s (after ${WARMUP}s warm-up)` +
      (CLOSE_DURATION ? `, Connection: close run ${CLOSE_DURATION}s` : '') +
      `; ${ROUNDS} rounds of ${MODES.join(', ')}; medians`,
  );
  for (const m of MODES) {
    const p = modes[m].preload;
    if (p) out.push(`${m} preload: ${fs.existsSync(p) ? p : `${p} (missing)`}`);
  }
  out.push(`load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  out.push('');
  const head = ['', 'req/s', 'x bare', 'x bare (per round)', 'p99 ms', 'cpu us/req', 'x bare', 'close req/s', 'x bare', 'cpu us/req', 'x bare'];
  const rows = [head];
  for (const m of MODES) {
    const s = stats[m];
    const b = stats.bare || {};
    rows.push([
      m,
      fmt(s.rps),
      m === 'bare' ? '' : ratio(s.rps, b.rps),
      m === 'bare' || !stats.bare ? '' : fmt(pairRatio(m, (r) => r.keep.rps), 3),
      fmt(s.p99, 2),
      fmt(s.cpu, 2),
      m === 'bare' ? '' : ratio(s.cpu, b.cpu),
      fmt(s.closeRps),
      m === 'bare' ? '' : ratio(s.closeRps, b.closeRps),
      fmt(s.closeCpu, 2),
      m === 'bare' ? '' : ratio(s.closeCpu, b.closeCpu),
    ]);
  }
  const w = head.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const pad = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  out.push(pad(rows[0]));
  out.push(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows.slice(1)) out.push(pad(r));
  out.push('');
  out.push('req/s: keep-alive; x bare: median over median, then the median of each round\'s own ratio;');
  out.push('cpu us/req: the app process\'s CPU time (all threads) over the requests wrk counted.');
  out.push('');
  for (const m of MODES) {
    out.push(
      `${m}: CPU time at start (until it first answers) ${fmt(stats[m].startMs, 1)} ms; idle for ${IDLE} s right after, ` +
        `${fmt(stats[m].idle)} us of CPU per second (by round: ${of(m, (r) => fmt(r.idleUsPerS)).join(' ')})`,
    );
  }
  for (const m of MODES) out.push(`${m} req/s by round: ${stats[m].all.join(' ')}`);
  for (const m of MODES) out.push(`${m} cpu us/req by round: ${of(m, (r) => fmt(r.keep.cpuUs, 2)).join(' ')}`);
  for (const m of MODES) {
    const d = described[m];
    if (d) out.push(`${m} process: cpus ${d.cpus}, nice ${d.nice}, policy ${d.policy}, threads ${d.threads}, stdout ${d.stdout}, stderr ${d.stderr}, argv: ${d.argv}`);
  }
  const text = out.join('\n');
  console.log(text);
  fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  fs.writeFileSync(path.join(BENCH, 'results', `${OUT}.txt`), text + '\n');
  fs.writeFileSync(path.join(BENCH, 'results', `${OUT}.json`), JSON.stringify({ versions, stats, rounds, described }, null, 2) + '\n');
  await cleanup();
}

main().catch(async (err) => {
  log(err && err.stack ? err.stack : err);
  await cleanup();
  process.exit(1);
});
