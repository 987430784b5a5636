'use strict';

// The same express app (bench/app) under PM2 and under rsup, in cluster mode
// (2 instances) and fork mode (1), with wrk holding 50 keep-alive
// connections while the app is reloaded RELOADS times. Prints, for each:
// requests, failed requests, reload time, daemon RSS, CLI latency and
// new-connection throughput. Prints figures; asserts nothing.
//
// Run through reload-bench.sh, which checks wrk, builds rsup and installs
// PM2 first. Settings (environment):
//   DURATION=40        seconds of load during which the reloads happen
//   RELOADS=5          reloads per configuration, spaced evenly
//   CLOSE_DURATION=10  seconds of the `Connection: close` run (no reload)
//   THREADS=2 CONNECTIONS=50 WRK_TIMEOUT=2s
//   CLI_RUNS=10        `jlist` calls timed per supervisor
//   WORK_MS=3          how long the app's /work route waits
//   BASE_PORT=18100    ports BASE_PORT+1..+4, one per configuration
//   ONLY=pm2|rsup      run one supervisor only
//   RSUP=path          rsup binary (default target/release/rsup)
//   RSUP_PRELOAD=path  rsup's Node preload (default npm/rsup/preload.js)
//   KEEP_HOME=1        keep the state directories (logs) after the run

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { num, sleep, median, memoryKb: rssKb, readPid, createSession } = require('./lib/common');

const daemonPid = (sup) => readPid(sup.pidFile());

const BENCH = __dirname;
const REPO = path.resolve(BENCH, '..');
const APP = path.join(BENCH, 'app', 'app.js');

const DURATION = num('DURATION', 40);
const RELOADS = num('RELOADS', 5);
const CLOSE_DURATION = num('CLOSE_DURATION', 10);
const THREADS = num('THREADS', 2);
const CONNECTIONS = num('CONNECTIONS', 50);
const WRK_TIMEOUT = process.env.WRK_TIMEOUT || '2s';
const CLI_RUNS = num('CLI_RUNS', 10);
const WORK_MS = num('WORK_MS', 3);
const BASE_PORT = num('BASE_PORT', 18100);
const ONLY = process.env.ONLY || '';
const RSUP = path.resolve(process.env.RSUP || path.join(REPO, 'target', 'release', 'rsup'));
const RSUP_PRELOAD = path.resolve(
  process.env.RSUP_PRELOAD || path.join(REPO, 'npm', 'rsup', 'preload.js'),
);
const PM2 = path.join(BENCH, 'node_modules', '.bin', 'pm2');

// Every process this script starts, so that an exit of any kind can end them.

const log = (...a) => console.error('[bench]', ...a);
const session = createSession({
  cwd: BENCH,
  log,
  supervisors: () => supervisors,
  killTimeoutMs: 20_000,
});
const { homes, run } = session;


function get(port, pathname = '/', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function waitServing(port, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await get(port, '/work')) === 200) return true;
    await sleep(100);
  }
  return false;
}

async function portClosed(port, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await get(port, '/', 300)) === 0) return true;
    await sleep(100);
  }
  return false;
}

// The two supervisors behind one interface: same app, same verbs.
const supervisors = {
  pm2: {
    label: 'pm2',
    env: () => ({ ...process.env, PM2_HOME: homes.pm2 }),
    cmd: PM2,
    // PM2's -i means cluster mode (its master accepts and hands sockets to
    // workers); fork mode is PM2's default when -i is absent.
    startArgs: (name, instances) =>
      ['start', APP, '--name', name, '--wait-ready'].concat(instances > 1 ? ['-i', String(instances)] : []),
    pidFile: () => path.join(homes.pm2, 'pm2.pid'),
    pids: (list, name) => list.filter((p) => p.name === name).map((p) => p.pid),
  },
  rsup: {
    label: 'rsup',
    env: () => ({ ...process.env, RSUP_HOME: homes.rsup, RSUP_PRELOAD }),
    cmd: RSUP,
    startArgs: (name, instances) =>
      ['start', APP, '--name', name, '--wait-ready', '-i', String(instances)],
    pidFile: () => path.join(homes.rsup, 'rsup.pid'),
    pids: (list, name) => list.filter((p) => p.name === name).map((p) => p.pid),
  },
};

async function cli(sup, args, timeoutMs = 60_000) {
  const env = sup.env();
  const r = await run(sup.cmd, args, { env, timeoutMs });
  if (r.code !== 0 && !session.stopping) {
    log(`${sup.label} ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}`);
    log((r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n'));
  }
  return r;
}

async function jlist(sup) {
  const r = await cli(sup, ['jlist'], 20_000);
  try {
    // PM2 may print a warning before the JSON.
    const s = r.stdout;
    return JSON.parse(s.slice(s.indexOf('[')));
  } catch {
    return [];
  }
}

function parseWrk(out) {
  const m = (re) => {
    const x = out.match(re);
    return x ? x.slice(1).map(Number) : null;
  };
  const req = m(/(\d+) requests in ([\d.]+)(?:s|m)/);
  const non2xx = m(/Non-2xx or 3xx responses: (\d+)/);
  const sock = m(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) || [0, 0, 0, 0];
  const rps = m(/Requests\/sec:\s+([\d.]+)/);
  const p99 = out.match(/^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m);
  const unit = { us: 1e-3, ms: 1, s: 1e3 };
  return {
    ok: Boolean(req && rps),
    requests: req ? req[0] : NaN,
    non2xx: non2xx ? non2xx[0] : 0,
    sock: { connect: sock[0], read: sock[1], write: sock[2], timeout: sock[3] },
    failed: (non2xx ? non2xx[0] : 0) + sock.reduce((a, b) => a + b, 0),
    rps: rps ? rps[0] : NaN,
    p99ms: p99 ? Number(p99[1]) * unit[p99[2]] : NaN,
  };
}

function wrk(port, seconds, extra = []) {
  const args = [
    `-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, `--timeout`, WRK_TIMEOUT, '--latency',
    ...extra, `http://127.0.0.1:${port}/work`,
  ];
  // SIGINT makes wrk stop and still print what it measured.
  return run('wrk', args, { timeoutMs: (seconds + 30) * 1000, signal: 'SIGINT' });
}

async function runConfig(sup, mode, instances, port) {
  const name = `bench-${mode}`;
  const env = { ...sup.env(), PORT: String(port), WORK_MS: String(WORK_MS) };
  log(`${sup.label} ${mode} (-i ${instances}) on :${port}`);
  const res = { sup: sup.label, mode, instances, port, reloads: [], notes: [] };

  const start = await run(sup.cmd, sup.startArgs(name, instances), { env, timeoutMs: 60_000 });
  if (start.code !== 0 || !(await waitServing(port))) {
    res.error = `start failed: ${(start.stderr || start.stdout).trim().split('\n').slice(-3).join(' | ')}`;
    log(res.error);
    return res;
  }
  let pids = sup.pids(await jlist(sup), name);

  // Load with reloads spaced evenly through it; a reload that runs long
  // delays the next one rather than overlapping it.
  const t0 = Date.now();
  const load = wrk(port, DURATION);
  let replaced = 0;
  for (let i = 0; i < RELOADS; i++) {
    const at = t0 + (DURATION * 1000 * (i + 1)) / (RELOADS + 1);
    if (Date.now() < at) await sleep(at - Date.now());
    const r = await cli(sup, ['reload', name], 120_000);
    res.reloads.push({ ms: r.ms, code: r.code, endedAt: Date.now() - t0 });
    const now = sup.pids(await jlist(sup), name);
    if (now.length && now.every((p) => !pids.includes(p))) replaced++;
    pids = now;
  }
  const loadOut = await load;
  res.load = parseWrk(loadOut.stdout);
  if (!res.load.ok) res.notes.push(`wrk (reload run) failed: ${loadOut.stderr.trim()}`);
  res.replaced = replaced;
  const late = res.reloads.filter((r) => r.endedAt > DURATION * 1000).length;
  if (late) res.notes.push(`${late} reload(s) ended after the load stopped`);
  const failedReloads = res.reloads.filter((r) => r.code !== 0).length;
  if (failedReloads) res.notes.push(`${failedReloads} reload command(s) exited non-zero`);

  // New connections: every request on its own connection, no reload.
  if (!(await waitServing(port))) res.notes.push('not serving after the reloads');
  const close = await wrk(port, CLOSE_DURATION, ['-H', 'Connection: close']);
  res.close = parseWrk(close.stdout);
  if (!res.close.ok) res.notes.push(`wrk (Connection: close) failed: ${close.stderr.trim()}`);
  return res;
}



async function measureDaemon(sup) {
  const times = [];
  for (let i = 0; i < CLI_RUNS; i++) times.push((await cli(sup, ['jlist'], 20_000)).ms);
  const pid = daemonPid(sup);
  return { cliMs: median(times), cliAll: times, pid, ...(pid ? rssKb(pid) : { rss: NaN, hwm: NaN }) };
}

// ---- output -------------------------------------------------------------

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : '-');

function table(results, daemons, meta) {
  const by = (sup, mode) => results.find((r) => r.sup === sup && r.mode === mode) || {};
  const rows = [];
  const line = (label, f, d = 0, withRatio = true) => {
    const cells = [label];
    for (const mode of ['cluster', 'fork']) {
      const p = f(by('pm2', mode));
      const r = f(by('rsup', mode));
      cells.push(fmt(p, d), fmt(r, d), withRatio ? ratio(r, p) : '');
    }
    rows.push(cells);
  };
  const reloadMs = (r) => median((r.reloads || []).map((x) => x.ms));
  line('requests (keep-alive, during reloads)', (r) => r.load && r.load.requests);
  line('failed requests', (r) => r.load && r.load.failed, 0, false);
  line('  non-2xx', (r) => r.load && r.load.non2xx, 0, false);
  line('  socket errors connect', (r) => r.load && r.load.sock.connect, 0, false);
  line('  socket errors read', (r) => r.load && r.load.sock.read, 0, false);
  line('  socket errors write', (r) => r.load && r.load.sock.write, 0, false);
  line('  socket errors timeout', (r) => r.load && r.load.sock.timeout, 0, false);
  line('requests/s (keep-alive)', (r) => r.load && r.load.rps);
  line('p99 latency ms (keep-alive)', (r) => r.load && r.load.p99ms, 1);
  line('median reload s', (r) => reloadMs(r) / 1000, 2);
  line('reloads that replaced every pid', (r) => r.replaced, 0, false);
  line('new-connection req/s (Connection: close)', (r) => r.close && r.close.rps);
  line('  failed (Connection: close)', (r) => r.close && r.close.failed, 0, false);

  const head = ['', 'pm2 cluster', 'rsup cluster', 'rsup/pm2', 'pm2 fork', 'rsup fork', 'rsup/pm2'];
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const out = [];
  const pad = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  out.push(meta);
  out.push('');
  out.push(pad(head));
  out.push(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) out.push(pad(r));
  out.push('');

  const p = daemons.pm2 || {};
  const s = daemons.rsup || {};
  const dRows = [
    ['', 'pm2', 'rsup', 'rsup/pm2'],
    ['daemon RSS MB (VmRSS, after the runs)', fmt(p.rss / 1024, 1), fmt(s.rss / 1024, 1), ratio(s.rss, p.rss)],
    ['daemon peak RSS MB (VmHWM)', fmt(p.hwm / 1024, 1), fmt(s.hwm / 1024, 1), ratio(s.hwm, p.hwm)],
    [`CLI latency ms (median of ${CLI_RUNS} jlist)`, fmt(p.cliMs, 1), fmt(s.cliMs, 1), ratio(s.cliMs, p.cliMs)],
  ];
  const dw = dRows[0].map((_, i) => Math.max(...dRows.map((r) => String(r[i]).length)));
  const dpad = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(dw[i]) : String(c).padStart(dw[i]))).join('  ');
  out.push(dpad(dRows[0]));
  out.push(dw.map((n) => '-'.repeat(n)).join('  '));
  for (const r of dRows.slice(1)) out.push(dpad(r));

  const pc = by('pm2', 'cluster').close;
  out.push('');
  for (const mode of ['cluster', 'fork']) {
    const rc = by('rsup', mode).close;
    if (pc && rc) out.push(`new-connection req/s, rsup ${mode} / pm2 cluster: ${ratio(rc.rps, pc.rps)}`);
  }
  for (const r of results) {
    const times = (r.reloads || []).map((x) => (x.ms / 1000).toFixed(2)).join(' ');
    if (times) out.push(`reload times s, ${r.sup} ${r.mode}: ${times}`);
    if (r.error) out.push(`${r.sup} ${r.mode}: ${r.error}`);
    for (const n of r.notes || []) out.push(`${r.sup} ${r.mode}: ${n}`);
  }
  return out.join('\n');
}

async function main() {
  const wanted = session.choose(ONLY);
  if (wanted.includes('rsup') && !fs.existsSync(RSUP_PRELOAD)) {
    log(`no rsup preload at ${RSUP_PRELOAD}: rsup restarts apps that bind their own port instead of reloading them`);
  }

  const versions = {
    node: process.version,
    pm2: wanted.includes('pm2') ? require(path.join(BENCH, 'node_modules', 'pm2', 'package.json')).version : '-',
    rsup: wanted.includes('rsup') ? (await run(RSUP, ['--version'])).stdout.trim() : '-',
    wrk: (await run('wrk', ['-v'])).stdout.split('\n')[0].replace(/\s*Copyright.*/, '').trim(),
  };

  // Cluster first, then fork; PM2 and rsup alternate so that drift in the
  // machine's load touches both alike.
  const configs = [];
  let port = BASE_PORT;
  for (const [mode, instances] of [['cluster', 2], ['fork', 1]]) {
    for (const key of ['pm2', 'rsup']) {
      port++;
      if (wanted.includes(key)) configs.push([key, mode, instances, port]);
    }
  }
  const results = [];
  for (const [key, mode, instances, p] of configs) {
    results.push(await runConfig(supervisors[key], mode, instances, p));
  }

  // Measured with both apps still running, so jlist has something to list.
  const daemons = {};
  for (const key of wanted) daemons[key] = await measureDaemon(supervisors[key]);

  const meta = [
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ${versions.node}, pm2 ${versions.pm2}, ${versions.rsup}, ${versions.wrk}`,
    `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s --timeout ${WRK_TIMEOUT} with ${RELOADS} reloads; ` +
      `Connection: close run ${CLOSE_DURATION}s; /work waits ${WORK_MS} ms; --wait-ready for both`,
    `rsup preload: ${fs.existsSync(RSUP_PRELOAD) ? RSUP_PRELOAD : 'missing'}`,
  ].join('\n');
  const text = table(results, daemons, meta);
  console.log(text);

  fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  fs.writeFileSync(path.join(BENCH, 'results', 'latest.txt'), text + '\n');
  fs.writeFileSync(
    path.join(BENCH, 'results', 'latest.json'),
    JSON.stringify({ versions, results, daemons }, null, 2) + '\n',
  );

  // Ports must be free for the next run.
  await session.cleanup();
  for (const [, , , p] of configs) {
    if (!(await portClosed(p, 5000))) log(`port ${p} still answers after the daemons stopped`);
  }
}

main().catch(async (err) => {
  log(err && err.stack ? err.stack : err);
  await session.cleanup();
  process.exit(1);
});
