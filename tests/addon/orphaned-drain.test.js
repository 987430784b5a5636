'use strict';

// listen-drain.js once the supervisor has died: its successor's kill
// signal alone drains the server, before the app's own handler of it runs,
// so a keep-alive connection in use is answered and closed, not cut.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');

const FIXTURE = path.join(__dirname, 'fixtures', 'orphaned-server.js');

function start(env) {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const port = new Promise((resolve) => {
    child.stdout.on('data', () => {
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, port, exited, output: () => out };
}

function get(agent, port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, agent }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ body, connection: res.headers.connection }));
      })
      .on('error', reject);
  });
}

// Resolves once the server no longer accepts: the drain has begun.
async function untilClosed(port) {
  for (;;) {
    const refused = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const handler of [false, true]) {
  test(`the kill signal drains a keep-alive connection first (${handler ? 'with' : 'without'} the app's handler)`, async () => {
    const app = start(handler ? { HANDLER: '1' } : {});
    const port = await app.port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await get(agent, port)).body, 'ok');
    // The connection is idle and kept: the signal comes now.
    app.child.kill('SIGUSR2');
    await untilClosed(port);
    // A request on it meanwhile is answered, and told the connection ends.
    const during = await get(agent, port);
    assert.equal(during.body, 'ok');
    assert.equal(during.connection, 'close');
    const { code, signal } = await app.exited;
    agent.destroy();
    if (handler) {
      assert.deepEqual({ code, signal }, { code: 0, signal: null });
      // The app's handler ran after the drain had closed the server.
      assert.match(app.output(), /handler listening=false/);
    } else {
      assert.deepEqual({ code, signal }, { code: null, signal: 'SIGUSR2' });
    }
  });
}
