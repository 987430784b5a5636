'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { start, sleep } = require('./helpers');

async function armed(t, scenario, opts = {}) {
  const app = start('handlers.js', { args: [scenario], ...opts });
  t.after(() => app.child.kill('SIGKILL'));
  await app.waitFor(/^armed /);
  return app;
}

test('handlers run last registered first', async (t) => {
  const app = await armed(t, 'order');
  app.child.kill('SIGTERM');
  const { code } = await app.exited;
  assert.equal(code, 0);
  assert.deepEqual(
    app.stdout().filter((l) => l.startsWith('handler')),
    ['handler third', 'handler second', 'handler first'],
  );
});

test('tracked work finishes before a cleanup handler runs', async (t) => {
  const app = await armed(t, 'tracked');
  app.child.kill('SIGTERM');
  const { code } = await app.exited;
  assert.equal(code, 0);
  const out = app.stdout();
  const cleanup = out.indexOf('cleanup ran');
  assert.ok(cleanup > 0, out.join('\n'));
  assert.ok(out.indexOf('tracked early done') >= 0 && out.indexOf('tracked early done') < cleanup, out.join('\n'));
  assert.ok(out.indexOf('tracked done') >= 0 && out.indexOf('tracked done') < cleanup, out.join('\n'));
});

test('a handler that overruns the deadline gives exit code 1 and is named', async (t) => {
  const app = await armed(t, 'overrun');
  const sent = Date.now();
  app.child.kill('SIGTERM');
  const { code, at } = await app.exited;
  assert.equal(code, 1);
  assert.match(app.stderr(), /deadline reached; unfinished: "never-resolves"/);
  // The handler registered first never got to run: it is reported too.
  assert.match(app.stderr(), /"never-resolves", "quick"/);
  // timeout 1500 ms minus the margin, with room for a slow machine.
  assert.ok(at - sent >= 1000 && at - sent < 6000, `exit after ${at - sent} ms`);
});

test('a handler that throws is named, the others still run, exit code 1', async (t) => {
  const app = await armed(t, 'throws');
  app.child.kill('SIGINT');
  const { code } = await app.exited;
  assert.equal(code, 1);
  assert.match(app.stderr(), /shutdown handler "thrower" failed: Error: boom/);
  assert.ok(app.stdout().includes('survivor ran'));
});

test('a second signal during shutdown does not start it again', async (t) => {
  const app = await armed(t, 'once');
  app.child.kill('SIGTERM');
  await app.waitFor(/^handler ran$/);
  app.child.kill('SIGINT');
  await sleep(100);
  app.child.kill('SIGTERM');
  const { code, signal } = await app.exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.equal(app.stdout().filter((l) => l === 'handler ran').length, 1);
  assert.equal(app.stderr().match(/shutting down/g).length, 1);
});

test('without onShutdown/graceful/track, SIGINT keeps its default', async (t) => {
  const app = await armed(t, 'untouched');
  app.child.kill('SIGINT');
  const { code, signal } = await app.exited;
  assert.equal(code, null);
  assert.equal(signal, 'SIGINT');
});

test("PM2: the 'shutdown' message stops the app", async (t) => {
  const app = await armed(t, 'order', {
    env: { pm_id: '0' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  assert.ok(app.stdout().includes('armed pm2'));
  app.child.send('shutdown');
  const { code } = await app.exited;
  assert.equal(code, 0);
  assert.match(app.stderr(), /shutting down \(shutdown message\)/);
  assert.equal(app.stdout().filter((l) => l.startsWith('handler')).length, 3);
});

test("PM2: ready() sends 'ready'; the IPC channel listened on does not keep the process alive", async (t) => {
  const app = start('handlers.js', {
    args: ['ipc-alive'],
    env: { pm_id: '3' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  t.after(() => app.child.kill('SIGKILL'));
  const messages = [];
  app.child.on('message', (m) => messages.push(m));
  const { code } = await Promise.race([
    app.exited,
    sleep(5000).then(() => ({ code: 'still running after 5 s' })),
  ]);
  assert.equal(code, 0);
  assert.deepEqual(messages, ['ready']);
});
