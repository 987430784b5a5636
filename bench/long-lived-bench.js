'use strict';

// Long-lived connections through reloads, PM2 and rsup side by side: the
// `ws`, socket.io and server-sent event apps of the end-to-end tests
// (tests/fixtures/long-lived, written the usual PM2 way and knowing nothing
// of rsup), 2 instances with --wait-ready, many clients sending a message
// every INTERVAL_MS, reloaded RELOADS times. The clients reconnect and
// resend what was not answered, as well-behaved ones do; a message is lost
// when it never got its echo (for event streams: an event number skipped).
// Prints, per app and supervisor: how client connections ended (WebSocket
// close codes; `end` or `reset` for event streams), messages sent, resent
// and lost, and reload times. Loopback only; bounded by its settings.
//
// Run through long-lived-bench.sh, which installs what it needs and builds
// rsup. Settings (environment):
//   CLIENTS=50          clients per app
//   INTERVAL_MS=50      one message per client per interval
//   RELOADS=3           reloads per app and supervisor
//   SPACING_MS=2000     pause before each reload and after the last
//   KILL_TIMEOUT=1600   kill_timeout for both (PM2's default)
//   KINDS=ws,socket.io,sse
//   BASE_PORT=18200     one port per app and supervisor from BASE_PORT+1
//   ONLY=pm2|rsup       run one supervisor only
//   RSUP=path           rsup binary (default target/release/rsup)
//   RSUP_PRELOAD=path   rsup's Node preload (default npm/rsup/preload.js)
//   KEEP_HOME=1         keep the state directories (logs) after the run

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { num, sleep, median, createSession } = require('./lib/common');

const BENCH = __dirname;
const REPO = path.resolve(BENCH, '..');
const FIXTURES = path.join(REPO, 'tests', 'fixtures', 'long-lived');
const { runClients } = require(path.join(FIXTURES, 'clients.js'));

const CLIENTS = num('CLIENTS', 50, { integer: true });
const INTERVAL_MS = num('INTERVAL_MS', 50);
const RELOADS = num('RELOADS', 3, { integer: true });
const SPACING_MS = num('SPACING_MS', 2000);
const KILL_TIMEOUT = num('KILL_TIMEOUT', 1600, { integer: true });
const KINDS = (process.env.KINDS || 'ws,socket.io,sse').split(',');
const BASE_PORT = num('BASE_PORT', 18200, { integer: true });
const ONLY = process.env.ONLY || '';
const RSUP = path.resolve(process.env.RSUP || path.join(REPO, 'target', 'release', 'rsup'));
const RSUP_PRELOAD = path.resolve(process.env.RSUP_PRELOAD || path.join(REPO, 'npm', 'rsup', 'preload.js'));
const PM2 = path.join(BENCH, 'node_modules', '.bin', 'pm2');

const APPS = { ws: 'ws-echo.js', 'socket.io': 'socketio-echo.js', sse: 'sse.js' };

const log = (...a) => console.error('[bench]', ...a);
const session = createSession({
  cwd: BENCH,
  log,
  supervisors: () => supervisors,
  killTimeoutMs: 20_000,
});
const { homes, run } = session;

// Both supervisors, same verbs. PM2's -i is cluster mode, its zero-downtime
// reload; rsup's instances share one socket the daemon holds.
const supervisors = {
  pm2: {
    label: 'pm2',
    env: () => ({ ...process.env, PM2_HOME: homes.pm2 }),
    cmd: PM2,
    pidFile: () => path.join(homes.pm2, 'pm2.pid'),
  },
  rsup: {
    label: 'rsup',
    env: () => ({ ...process.env, RSUP_HOME: homes.rsup, RSUP_PRELOAD }),
    cmd: RSUP,
    pidFile: () => path.join(homes.rsup, 'rsup.pid'),
  },
};

async function cli(sup, args, extraEnv = {}) {
  const r = await run(sup.cmd, args, { env: { ...sup.env(), ...extraEnv }, timeoutMs: 120_000 });
  if (r.code !== 0 && !session.stopping) {
    log(`${sup.label} ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}`);
    log((r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n'));
  }
  return r;
}

function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

async function waitAccepting(port, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await accepts(port)) return true;
    await sleep(100);
  }
  return false;
}

const within = (promise, ms) =>
  Promise.race([promise.then(() => true), sleep(ms).then(() => false)]);

async function runOne(sup, kind, port) {
  const name = `live-${kind.replace('.', '')}`;
  const res = { sup: sup.label, kind, reloads: [], notes: [] };
  log(`${sup.label} ${kind} on :${port}`);
  const args = ['start', path.join(FIXTURES, APPS[kind]), '--name', name, '-i', '2', '--wait-ready'];
  args.push('--kill-timeout', String(KILL_TIMEOUT));
  const start = await cli(sup, args, { PORT: String(port) });
  if (start.code !== 0 || !(await waitAccepting(port))) {
    res.error = 'start failed';
    return res;
  }
  const clients = runClients({ kind, port, clients: CLIENTS, intervalMs: INTERVAL_MS });
  if (!(await within(clients.connected, 20_000))) res.notes.push('not every client connected within 20 s');
  for (let i = 0; i < RELOADS; i++) {
    await sleep(SPACING_MS);
    const r = await cli(sup, ['reload', name]);
    res.reloads.push(r.ms);
    if (r.code !== 0) res.notes.push(`reload ${i + 1} exited ${r.code}`);
  }
  await sleep(SPACING_MS);
  res.summary = await clients.stop();
  await cli(sup, ['delete', name]);
  return res;
}

// ---- output -------------------------------------------------------------

const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');

function closes(summary) {
  const entries = Object.entries((summary && summary.closes) || {}).sort((a, b) => b[1] - a[1]);
  return entries.map(([how, n]) => `${how}×${n}`).join(' ') || '-';
}

function table(results, meta) {
  const rows = [['', 'clients', 'closes (how: count)', 'sent', 'resent', 'lost', 'failed connects', 'reload s (median)', 'reloads s']];
  for (const r of results) {
    const s = r.summary || {};
    rows.push([
      `${r.kind} ${r.sup}`,
      fmt(s.clients),
      closes(s),
      fmt(s.sent),
      r.kind === 'ws' ? fmt(s.resent) : '-',
      fmt(s.lost),
      fmt(s.failedConnects),
      fmt(median(r.reloads) / 1000, 2),
      r.reloads.map((ms) => (ms / 1000).toFixed(2)).join(' '),
    ]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
  const pad = (row) => row.map((c, i) => (i === 0 || i === 2 || i === 8 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  const out = [meta, '', pad(rows[0]), w.map((n) => '-'.repeat(n)).join('  '), ...rows.slice(1).map(pad), ''];
  for (const r of results) {
    if (r.error) out.push(`${r.kind} ${r.sup}: ${r.error}`);
    for (const n of r.notes) out.push(`${r.kind} ${r.sup}: ${n}`);
  }
  out.push(
    'closes: WebSocket close codes (1012 Service Restart: the server asked; 1006: the connection was reset);',
    'for event streams `end` (the server ended the stream) or `reset`. sent: for event streams, events received.',
    'socket.io resends through its own retries, which it does not count.',
  );
  return out.join('\n');
}

async function main() {
  const wanted = session.choose(ONLY);
  for (const kind of KINDS) if (!APPS[kind]) throw new Error(`KINDS: unknown ${kind}; ws, socket.io or sse`);

  const version = (dir, pkg) => require(path.join(dir, 'node_modules', pkg, 'package.json')).version;
  const tests = path.join(REPO, 'tests');
  const results = [];
  let port = BASE_PORT;
  for (const kind of KINDS) {
    for (const key of ['pm2', 'rsup']) {
      port++;
      if (wanted.includes(key)) results.push(await runOne(supervisors[key], kind, port));
    }
  }

  const meta = [
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ${process.version}, ` +
      `pm2 ${wanted.includes('pm2') ? version(BENCH, 'pm2') : '-'}, ` +
      `${wanted.includes('rsup') ? (await run(RSUP, ['--version'])).stdout.trim() : 'rsup -'}, ` +
      `ws ${version(tests, 'ws')}, socket.io ${version(tests, 'socket.io')}`,
    `2 instances, --wait-ready, kill_timeout ${KILL_TIMEOUT} ms; ${CLIENTS} clients per app, one message every ` +
      `${INTERVAL_MS} ms each; ${RELOADS} reloads ${SPACING_MS} ms apart`,
  ].join('\n');
  const text = table(results, meta);
  console.log(text);
  fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  fs.writeFileSync(path.join(BENCH, 'results', 'long-lived-latest.txt'), text + '\n');
  await session.cleanup();
}

main().catch(async (err) => {
  log(err && err.stack ? err.stack : err);
  await session.cleanup();
  process.exit(1);
});
