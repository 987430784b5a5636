'use strict';

// The preload (npm/rsup/preload.js) under the real rsup daemon, which loads
// it into Node apps with `node -r`: an app that knows nothing of rsup gets
// the supervisor's sockets through a plain server.listen(), sees bind
// errors as Node would report them, and on stop drains before its own
// SIGINT handler exits it. Outside rsup the preload changes nothing.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { start, request, sleep, FIXTURES, ADDON } = require('./helpers');
const { skip, privateDaemon } = require('./daemon');

const APP = path.join(FIXTURES, 'listen-app.js');
const daemon = privateDaemon();
test.after(daemon.cleanup);

// A port nobody listens on right now.
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startApp(name, env, args = []) {
  const out = await daemon.rsup(['start', APP, '--name', name, ...args], 30_000, env);
  assert.equal(out.code, 0, `rsup start: ${out.stdout}\n${out.stderr}`);
}

async function instances(name) {
  return (await daemon.list()).filter((p) => p.name === name);
}

// Resolves with the lines of each instance's stdout log once every one of
// them has a line matching `re`.
async function waitForLogs(name, re, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const procs = await instances(name);
    const logs = procs.map((p) => (fs.existsSync(p.out_log) ? fs.readFileSync(p.out_log, 'utf8').split('\n') : []));
    if (procs.length > 0 && logs.every((lines) => lines.some((l) => re.test(l)))) return logs;
    if (Date.now() > until) {
      assert.fail(`no ${re} in every log of ${name} within ${timeoutMs} ms:\n${JSON.stringify(logs, null, 1)}`);
    }
    await sleep(100);
  }
}

function listeningAddress(lines) {
  const line = lines.find((l) => l.startsWith('listening '));
  return JSON.parse(line.slice('listening '.length));
}

async function stopApp(name) {
  const out = await daemon.rsup(['delete', name], 30_000);
  assert.equal(out.code, 0, `rsup delete: ${out.stdout}\n${out.stderr}`);
}

test('two instances listen on one port and both answer there', { skip }, async () => {
  const port = await freePort();
  await startApp('shared', { PORT: String(port) }, ['-i', '2']);
  const logs = await waitForLogs('shared', /^listening /);
  for (const lines of logs) {
    assert.ok(lines.includes("listen is node's: false"), lines.join('\n'));
    assert.equal(listeningAddress(lines).port, port);
  }
  const pids = new Set((await instances('shared')).map((p) => p.pid));
  assert.equal(pids.size, 2);

  // One connection per request: which process accepts is the kernel's
  // choice, so ask until both have answered.
  const seen = new Set();
  for (let i = 0; i < 400 && seen.size < 2; i++) {
    const batch = await Promise.all(
      Array.from({ length: 4 }, () => request(port, '/', { agent: false, headers: { connection: 'close' } })),
    );
    for (const res of batch) {
      assert.equal(res.status, 200);
      const body = JSON.parse(res.body);
      assert.equal(body.port, port);
      assert.ok(pids.has(body.pid), `answer from unknown pid ${body.pid}`);
      seen.add(body.pid);
    }
  }
  assert.equal(seen.size, 2, 'only one instance ever answered');
  await stopApp('shared');
});

test('listen(0) in two instances gives both the same port', { skip }, async () => {
  await startApp('ephemeral', { PORT: '0' }, ['-i', '2']);
  const logs = await waitForLogs('ephemeral', /^listening /);
  const ports = logs.map((lines) => listeningAddress(lines).port);
  assert.equal(ports.length, 2);
  assert.ok(ports[0] > 0, `port ${ports[0]}`);
  assert.equal(ports[0], ports[1]);
  const res = await request(ports[0], '/', { agent: false });
  assert.equal(JSON.parse(res.body).port, ports[0]);
  await stopApp('ephemeral');
});

test('listen({ port, host }) gets the socket for that host; the preload loads no TLS or crypto', { skip }, async () => {
  const port = await freePort();
  await startApp('host', { PORT: String(port), LISTEN: 'options', HOST: '127.0.0.1' });
  const [lines] = await waitForLogs('host', /^builtins /);
  assert.deepEqual(listeningAddress(lines), { address: '127.0.0.1', family: 'IPv4', port });
  // An http app loads neither itself: were the preload to, every app would
  // carry all of node:crypto in its heap.
  const builtins = JSON.parse(lines.find((l) => l.startsWith('builtins ')).slice('builtins '.length));
  for (const heavy of ['tls', 'crypto', 'https', 'http2']) {
    assert.ok(!builtins.includes(heavy), `${heavy} loaded: ${builtins.join(' ')}`);
  }
  assert.equal((await request(port, '/', { agent: false })).status, 200);
  await stopApp('host');
});

test('listen(path) takes rsup\'s Unix socket; address() is the path', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-sock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'app.sock');
  await startApp('unix', { LISTEN: 'path', SOCKET_PATH: socketPath }, ['-i', '2']);
  const logs = await waitForLogs('unix', /^listening /);
  for (const lines of logs) assert.equal(listeningAddress(lines), socketPath);
  const res = await new Promise((resolve, reject) => {
    http.get({ socketPath, path: '/', agent: false }, (r) => {
      let body = '';
      r.on('data', (d) => {
        body += d;
      });
      r.on('end', () => resolve({ status: r.statusCode, body }));
    }).on('error', reject);
  });
  assert.equal(res.status, 200);
  const pids = (await instances('unix')).map((p) => p.pid);
  assert.ok(pids.includes(JSON.parse(res.body).pid));
  await stopApp('unix');
});

test('a port taken by another program reaches the app as Node\'s EADDRINUSE error', { skip }, async (t) => {
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, resolve));
  t.after(() => taken.close());
  const { port } = taken.address();

  await startApp('in-use', { PORT: String(port) });
  const [lines] = await waitForLogs('in-use', /^error /);
  const err = JSON.parse(lines.find((l) => l.startsWith('error ')).slice('error '.length));
  assert.deepEqual(err, {
    message: `listen EADDRINUSE: address already in use :::${port}`,
    code: 'EADDRINUSE',
    errno: -os.constants.errno.EADDRINUSE,
    syscall: 'listen',
    address: '::',
    port,
  });
  assert.ok(!lines.some((l) => l.startsWith('listening ')), lines.join('\n'));
  await stopApp('in-use');
});

test('without rsup, node -r preload.js changes nothing', async (t) => {
  const port = await freePort();
  // pm_id as under PM2, which gives no RSUP_FD.
  const app = start('listen-app.js', {
    nodeArgs: ['-r', path.join(ADDON, 'preload.js')],
    env: { PORT: String(port), pm_id: '0' },
  });
  t.after(() => app.child.kill('SIGKILL'));
  await app.waitFor(/^listening /);
  assert.ok(app.stdout().includes("listen is node's: true"), app.stdout().join('\n'));
  const res = await request(port, '/', { agent: false });
  assert.equal(JSON.parse(res.body).port, port);
  app.child.kill('SIGINT');
  assert.equal((await app.exited).code, 0);
  assert.ok(app.stdout().includes('closed ok'), app.stdout().join('\n'));
});

test('stop drains: the request in flight ends with Connection: close, the idle keep-alive connection is closed before it, close(cb) runs without error', { skip }, async () => {
  const port = await freePort();
  // kill_timeout/2 (how long rsup waits for the drain) is well above the
  // slow request, which outlasts the idle connections' grace (1 s).
  await startApp('drain', { PORT: String(port) }, ['--kill-timeout', '10000']);
  await waitForLogs('drain', /^listening /);

  // An idle keep-alive connection, as a client's pool holds one.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await request(port, '/', { agent });
  assert.equal(first.status, 200);
  const [idle] = Object.values(agent.freeSockets).flat();
  assert.ok(idle, 'the keep-alive connection was not kept');
  let idleClosedAt = null;
  idle.once('close', () => {
    idleClosedAt = Date.now();
  });

  // A slow request on a second keep-alive connection.
  const slowAgent = new http.Agent({ keepAlive: true });
  let slowEndedAt = null;
  const slow = request(port, '/slow?ms=3000', { agent: slowAgent }).then((res) => {
    slowEndedAt = Date.now();
    return res;
  });
  await waitForLogs('drain', /^slow request started$/);

  const stop = await daemon.rsup(['stop', 'drain'], 30_000);
  assert.equal(stop.code, 0, `rsup stop: ${stop.stdout}\n${stop.stderr}`);
  const res = await slow;
  assert.equal(res.status, 200);
  assert.match(res.body, /^slow \d+$/);
  assert.equal(res.headers.connection, 'close');
  // Closed after its grace, not left until the slow request was done.
  assert.ok(idleClosedAt !== null && idleClosedAt < slowEndedAt, `idle closed at ${idleClosedAt}, slow ended at ${slowEndedAt}`);

  const [info] = await instances('drain');
  assert.equal(info.status, 'stopped');
  const lines = fs.readFileSync(info.out_log, 'utf8').split('\n');
  // The app's own handler exited it, after rsup's signal.
  assert.ok(lines.includes('SIGINT') && lines.includes('closed ok'), lines.join('\n'));
  assert.deepEqual(
    { code: info.last_exit && info.last_exit.code, signal: info.last_exit && info.last_exit.signal },
    { code: 0, signal: null },
  );
  agent.destroy();
  slowAgent.destroy();
  await stopApp('drain');
});

test('an app\'s own copy of the package shares the preload\'s channel', { skip }, async (t) => {
  // A copy at another path loads its own addon, which finds RSUP_FD
  // already claimed and removed.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-copy-'));
  t.after(() => fs.rmSync(copy, { recursive: true, force: true }));
  for (const entry of fs.readdirSync(ADDON)) {
    if (['index.js', 'package.json', 'lib'].includes(entry) || entry.endsWith('.node')) {
      fs.cpSync(path.join(ADDON, entry), path.join(copy, entry), { recursive: true });
    }
  }
  const out = await daemon.rsup(
    ['start', path.join(FIXTURES, 'copy-app.js'), '--name', 'copy', '--wait-ready', '--listen-timeout', '60000'],
    30_000,
    { RSUP_COPY: copy },
  );
  assert.equal(out.code, 0, `rsup start: ${out.stdout}\n${out.stderr}`);
  const [lines] = await waitForLogs('copy', /^listening /);
  assert.ok(lines.includes('supervisor rsup'), lines.join('\n'));

  const stop = await daemon.rsup(['stop', 'copy'], 30_000);
  assert.equal(stop.code, 0, `rsup stop: ${stop.stdout}\n${stop.stderr}`);
  const [info] = await instances('copy');
  assert.equal(info.last_exit && info.last_exit.code, 0, JSON.stringify(info.last_exit));
  assert.match(fs.readFileSync(info.out_log, 'utf8'), /^cleanup$/m);
  // The app's shutdown began with rsup's message, which reached it through
  // the shared channel.
  assert.match(fs.readFileSync(info.err_log, 'utf8'), /shutting down \(rsup shutdown message\)/);
  await stopApp('copy');
});
