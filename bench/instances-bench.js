'use strict';

// Cost per instance: N fork-mode instances of a shell sleeper
// (`exec sleep 100000`) under PM2 and under rsup, from one ecosystem file
// (interpreter none, PM2's defaults otherwise). For each supervisor, in a
// private state directory: the daemon's RSS when fresh, the time to start
// the N instances (the start command, and until `jlist` shows N online),
// the daemon's RSS with them running, RSS per instance, and the median of
// JLIST_RUNS `jlist` calls. Then everything is killed. Prints figures;
// asserts nothing.
//
// Run through instances-bench.sh, which builds rsup, installs PM2 and
// raises the descriptor limit first. Settings (environment):
//   N=1000          instances
//   JLIST_RUNS=10   `jlist` calls timed per supervisor
//   SETTLE_MS=2000  wait before reading the daemon's RSS
//   ONLY=pm2|rsup   run one supervisor only
//   RSUP=path       rsup binary (default target/release/rsup)
//   KEEP_HOME=1     keep the state directories after the run

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { num, sleep, median, memoryKb, readPid, createSession } = require('./lib/common');

const rssKb = (pid) => memoryKb(pid).rss;
const daemonPid = (sup) => readPid(sup.pidFile());

const BENCH = __dirname;
const REPO = path.resolve(BENCH, '..');

const N = num('N', 1000, { integer: true });
const JLIST_RUNS = num('JLIST_RUNS', 10, { integer: true });
const SETTLE_MS = num('SETTLE_MS', 2000, { integer: true });
const ONLY = process.env.ONLY || '';
const RSUP = path.resolve(process.env.RSUP || path.join(REPO, 'target', 'release', 'rsup'));
const PM2 = path.join(BENCH, 'node_modules', '.bin', 'pm2');
const APP = 'sleepers';

const log = (...a) => console.error('[bench]', ...a);
const session = createSession({
  cwd: BENCH,
  log,
  supervisors: () => supervisors,
  killTimeoutMs: 120_000,
  signal: 'SIGKILL',
});
const { homes, run } = session;

const supervisors = {
  pm2: {
    label: 'pm2',
    env: () => ({ ...process.env, PM2_HOME: homes.pm2 }),
    cmd: PM2,
    pidFile: () => path.join(homes.pm2, 'pm2.pid'),
    // `ping` starts PM2's daemon when none runs.
    bootArgs: ['ping'],
    online: (p) => p.pm2_env && p.pm2_env.status === 'online',
  },
  rsup: {
    label: 'rsup',
    env: () => ({ ...process.env, RSUP_HOME: homes.rsup }),
    cmd: RSUP,
    pidFile: () => path.join(homes.rsup, 'rsup.pid'),
    // `list` starts rsup's daemon when none runs (`ping` only asks).
    bootArgs: ['list'],
    online: (p) => p.pm2_env && p.pm2_env.status === 'online',
  },
};

async function cli(sup, args, timeoutMs) {
  const r = await run(sup.cmd, args, { env: sup.env(), timeoutMs });
  if (r.code !== 0 && !session.stopping) {
    log(`${sup.label} ${args.join(' ')}: exit ${r.code}`);
    log((r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n'));
  }
  return r;
}

async function jlist(sup) {
  const r = await cli(sup, ['jlist'], 60_000);
  try {
    // PM2 may print a warning before the JSON.
    const s = r.stdout;
    return { ms: r.ms, bytes: r.stdout.length, list: JSON.parse(s.slice(s.indexOf('['))) };
  } catch {
    return { ms: r.ms, bytes: r.stdout.length, list: [] };
  }
}



async function waitPid(sup, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const pid = daemonPid(sup);
    if (pid && Number.isFinite(rssKb(pid))) return pid;
    await sleep(50);
  }
  return null;
}

async function measure(sup, script) {
  const res = { sup: sup.label, notes: [] };
  const home = homes[sup.label];
  const eco = path.join(home, 'sleepers.config.json');
  fs.writeFileSync(
    eco,
    JSON.stringify({
      apps: [{ name: APP, script, interpreter: 'none', exec_mode: 'fork', instances: N }],
    }),
  );

  log(`${sup.label}: fresh daemon`);
  await cli(sup, sup.bootArgs, 60_000);
  const pid = await waitPid(sup);
  if (!pid) {
    res.error = 'no daemon pid';
    return res;
  }
  await sleep(SETTLE_MS);
  res.freshKb = rssKb(pid);

  log(`${sup.label}: starting ${N} instances`);
  const t0 = Date.now();
  const start = await cli(sup, ['start', eco], 600_000);
  res.startMs = start.ms;
  if (start.code !== 0) res.notes.push(`start exited ${start.code}`);
  let online = 0;
  const end = Date.now() + 120_000;
  while (Date.now() < end && !session.stopping) {
    online = (await jlist(sup)).list.filter(sup.online).length;
    if (online >= N) break;
    await sleep(200);
  }
  res.onlineMs = Date.now() - t0;
  res.online = online;
  if (online < N) res.notes.push(`only ${online} of ${N} online`);

  await sleep(SETTLE_MS);
  res.afterKb = rssKb(pid);
  res.perInstanceKb = (res.afterKb - res.freshKb) / N;

  log(`${sup.label}: ${JLIST_RUNS} jlist`);
  const times = [];
  for (let i = 0; i < JLIST_RUNS; i++) {
    const j = await jlist(sup);
    times.push(j.ms);
    res.jlistBytes = j.bytes;
  }
  res.jlistMs = median(times);
  res.jlistAll = times;
  res.endKb = rssKb(pid);

  log(`${sup.label}: kill`);
  const k = await cli(sup, ['kill'], 120_000);
  res.killMs = k.ms;
  return res;
}

// ---- output -------------------------------------------------------------

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : '-');

function table(results, meta) {
  const p = results.pm2 || {};
  const s = results.rsup || {};
  const rows = [
    ['', 'pm2', 'rsup', 'rsup/pm2'],
    ['fresh daemon RSS MB', fmt(p.freshKb / 1024, 1), fmt(s.freshKb / 1024, 1), ratio(s.freshKb, p.freshKb)],
    [`daemon RSS MB, ${N} instances`, fmt(p.afterKb / 1024, 1), fmt(s.afterKb / 1024, 1), ratio(s.afterKb, p.afterKb)],
    ['RSS per instance KB', fmt(p.perInstanceKb, 1), fmt(s.perInstanceKb, 1), ratio(s.perInstanceKb, p.perInstanceKb)],
    ['daemon RSS MB after the jlist calls', fmt(p.endKb / 1024, 1), fmt(s.endKb / 1024, 1), ratio(s.endKb, p.endKb)],
    ['start command s', fmt(p.startMs / 1000, 2), fmt(s.startMs / 1000, 2), ratio(s.startMs, p.startMs)],
    [`until ${N} online s`, fmt(p.onlineMs / 1000, 2), fmt(s.onlineMs / 1000, 2), ratio(s.onlineMs, p.onlineMs)],
    [`jlist ms (median of ${JLIST_RUNS})`, fmt(p.jlistMs, 1), fmt(s.jlistMs, 1), ratio(s.jlistMs, p.jlistMs)],
    ['jlist output KB', fmt(p.jlistBytes / 1024, 0), fmt(s.jlistBytes / 1024, 0), ratio(s.jlistBytes, p.jlistBytes)],
    ['kill s', fmt(p.killMs / 1000, 2), fmt(s.killMs / 1000, 2), ratio(s.killMs, p.killMs)],
  ];
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const pad = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  const out = [meta, '', pad(rows[0]), w.map((n) => '-'.repeat(n)).join('  ')];
  for (const r of rows.slice(1)) out.push(pad(r));
  out.push('');
  for (const r of [p, s]) {
    if (r.jlistAll) out.push(`jlist ms, ${r.sup}: ${r.jlistAll.map((x) => x.toFixed(1)).join(' ')}`);
    if (r.error) out.push(`${r.sup}: ${r.error}`);
    for (const n of r.notes || []) out.push(`${r.sup}: ${n}`);
  }
  return out.join('\n');
}

async function main() {
  const wanted = session.choose(ONLY);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sleeper-'));
  const script = path.join(work, 'sleeper.sh');
  fs.writeFileSync(script, '#!/bin/sh\nexec sleep 100000\n', { mode: 0o755 });

  const versions = {
    node: process.version,
    pm2: wanted.includes('pm2') ? require(path.join(BENCH, 'node_modules', 'pm2', 'package.json')).version : '-',
    rsup: wanted.includes('rsup') ? (await run(RSUP, ['--version'])).stdout.trim() : '-',
  };

  const results = {};
  try {
    for (const key of wanted) {
      results[key] = await measure(supervisors[key], script);
    }
  } finally {
    await session.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }

  const meta = [
    `instances bench ${new Date().toISOString()} on ${os.hostname()} (${os.cpus().length} cpus, ${os.type()} ${os.release()})`,
    `node ${versions.node}, pm2 ${versions.pm2}, ${versions.rsup}`,
    `N=${N} fork-mode instances of \`#!/bin/sh exec sleep 100000\` (interpreter none), ` +
      `RSS per instance = (RSS with N - fresh RSS) / N, fd limit ${process.env.BENCH_NOFILE || '?'}`,
  ].join('\n');
  const text = table(results, meta);
  console.log(text);
  const dir = path.join(BENCH, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(dir, `instances-${stamp}.txt`), text + '\n');
  fs.writeFileSync(path.join(dir, 'instances-latest.txt'), text + '\n');
  fs.writeFileSync(path.join(dir, `instances-${stamp}.json`), JSON.stringify({ N, versions, results }, null, 2));
}

main().catch(async (err) => {
  console.error(err);
  await session.cleanup();
  process.exit(1);
});
