'use strict';

// ready() never reports readiness for a server that failed to listen.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { start } = require('./helpers');

async function takenPort() {
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  return blocker;
}

for (const style of ['arrow', 'callback']) {
  test(`PM2: ready() reports nothing when graceful()'s server fails to listen (${style})`, async (t) => {
    const blocker = await takenPort();
    t.after(() => blocker.close());
    const app = start('ready-on-failed-listen.js', {
      args: [String(blocker.address().port), style],
      env: { pm_id: '3' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    t.after(() => app.child.kill('SIGKILL'));
    const messages = [];
    app.child.on('message', (m) => messages.push(m));
    await app.waitFor(/listen failed EADDRINUSE/);
    const { code } = await app.exited;
    assert.equal(code, 0);
    assert.deepEqual(messages, []);
    assert.match(app.stderr(), /not ready: .*EADDRINUSE/);
  });
}
