'use strict';

// With wait_ready the preload's servers take no connection before the app
// is ready, while listen() completes as Node's does. The app runs the
// preload's session around a stand-in channel whose socket is a listening
// socket this test binds and hands over (fixtures/held-app.js).

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { start, request, sleep, killOnExit } = require('./helpers');

// A listening socket on a free port, open only in the app: this process
// closes its copy right after the app starts.
async function startHeld(env) {
  const socket = net.createServer();
  await new Promise((resolve) => socket.listen(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  const app = start('held-app.js', {
    env: { ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe', socket._handle.fd, 'ipc'],
  });
  socket.close();
  return { app, port };
}

// How long a server that accepts would take, many times over, to answer a
// request already waiting for it.
const SETTLE_MS = 1000;

for (const by of ['send', 'package', 'accept']) {
  test(`no connection is accepted before ready (${by}); listen() completes at once`, async (t) => {
    const { app, port } = await startHeld({ READY_BY: by });
    t.after(killOnExit(app));
    const messages = [];
    app.child.on('message', (m) => messages.push(m));

    const listening = await app.waitFor(/^listening /);
    assert.equal(listening, `listening ${JSON.stringify({ address: '127.0.0.1', family: 'IPv4', port })} true`);

    let answered = false;
    const pending = request(port, '/', { agent: false }).then((res) => {
      answered = true;
      return res;
    });
    await sleep(SETTLE_MS);
    assert.equal(answered, false, 'answered before ready');
    assert.ok(!app.stdout().includes('served'), app.stdout().join('\n'));

    app.child.kill('SIGUSR2');
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.body, String(app.child.pid));
    const lines = app.stdout();
    assert.ok(lines.indexOf('saying ready') < lines.indexOf('served'), lines.join('\n'));
    if (by === 'send') {
      // process.send('ready') still reaches the supervisor.
      await new Promise((resolve) => (messages.length ? resolve() : app.child.once('message', resolve)));
      assert.deepEqual(messages, ['ready']);
    }
    if (by === 'package') assert.ok(lines.includes('channel ready'), lines.join('\n'));
    app.child.kill('SIGINT');
    assert.equal((await app.exited).code, 0);
  });
}

test('without ready, the server accepts once listen_timeout has passed', async (t) => {
  const { app, port } = await startHeld({ LISTEN_TIMEOUT_MS: '1500' });
  t.after(killOnExit(app));
  await app.waitFor(/^listening /);
  const res = await request(port, '/', { agent: false });
  assert.equal(res.status, 200);
  assert.match(app.stderr(), /no ready within listen_timeout \(1500 ms\): accepting connections/);
  assert.ok(!app.stdout().includes('saying ready'));
});
