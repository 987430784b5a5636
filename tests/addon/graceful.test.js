'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');
const path = require('node:path');
const { start, request, sleep, FIXTURES } = require('./helpers');

async function startServer(t, env = {}) {
  const app = start('server.js', { env });
  t.after(() => app.child.kill('SIGKILL'));
  const port = Number((await app.waitFor(/^listening \d+$/)).split(' ')[1]);
  return { app, port };
}

test('an in-flight slow request completes while shutdown runs', async (t) => {
  const { app, port } = await startServer(t);
  const slow = request(port, '/slow?ms=1200');
  await app.waitFor(/^slow request started$/);
  app.child.kill('SIGTERM');

  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'slow 1200');
  assert.equal(res.headers.connection, 'close');
  // New connections are refused once draining started.
  await assert.rejects(request(port, '/fast'), { code: 'ECONNREFUSED' });

  const { code } = await app.exited;
  assert.equal(code, 0);
  assert.ok(app.stdout().includes('cleanup'), 'the cleanup handler ran after the drain');
});

test('idle keep-alive connections do not delay exit', async (t) => {
  const { app, port } = await startServer(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  // Four connections, used once each, then idle in the agent's pool.
  const first = await Promise.all([1, 2, 3, 4].map(() => request(port, '/slow?ms=100', { agent })));
  assert.equal(new Set(first.map((r) => r.localPort)).size, 4);
  assert.equal(first[0].headers.connection, 'keep-alive');

  const sent = Date.now();
  app.child.kill('SIGTERM');
  const { code, at } = await app.exited;
  assert.equal(code, 0);
  // keepAliveTimeout is 60 s and the deadline 20 s: leaving the idle
  // connections open would take one of those.
  assert.ok(at - sent < 5000, `exit took ${at - sent} ms`);
});

test('no accepted request fails under steady keep-alive load', async (t) => {
  const { app, port } = await startServer(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  let ok = 0;
  const failures = [];
  let stop = false;
  // Eight clients sending back to back until the server refuses them.
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        const res = await request(port, '/slow?ms=20', { agent });
        assert.equal(res.status, 200);
        ok += 1;
      } catch (err) {
        if (err.code === 'ECONNREFUSED') return;
        failures.push(err.code || err.message);
        return;
      }
    }
  });
  await sleep(300);
  app.child.kill('SIGTERM');
  const { code } = await app.exited;
  stop = true;
  await Promise.all(clients);
  assert.equal(code, 0);
  assert.ok(ok > 20, `only ${ok} requests succeeded`);
  assert.deepEqual(failures, []);
});

test('the readiness helper answers 503 while draining', async (t) => {
  const { app, port } = await startServer(t);
  const before = await request(port, '/health');
  assert.equal(before.status, 200);
  // Evaluated after the wait, that is while the server drains.
  const during = request(port, '/health?after=600');
  await app.waitFor(/^health check waiting$/);
  app.child.kill('SIGTERM');
  const res = await during;
  assert.equal(res.status, 503);
  assert.equal(res.body, 'shutting down');
  assert.equal(res.headers.connection, 'close');
  assert.equal((await app.exited).code, 0);
});

test('https: an in-flight request completes and the server exits', async (t) => {
  const { app, port } = await startServer(t, { TLS: '1' });
  const ca = fs.readFileSync(path.join(FIXTURES, 'tls', 'cert.pem'));
  const agent = new https.Agent({ keepAlive: true, ca });
  t.after(() => agent.destroy());
  const get = (p) =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        })
        .on('error', reject);
    });
  assert.equal((await get('/fast')).body, 'fast'); // leaves an idle TLS connection
  const slow = get('/slow?ms=800');
  await app.waitFor(/^slow request started$/);
  const sent = Date.now();
  app.child.kill('SIGTERM');
  const res = await slow;
  assert.equal(res.body, 'slow 800');
  assert.equal(res.headers.connection, 'close');
  const { code, at } = await app.exited;
  assert.equal(code, 0);
  assert.ok(at - sent < 5000, `exit took ${at - sent} ms`);
});

test('http2: an in-flight stream completes, the idle session does not delay exit', async (t) => {
  const http2 = require('node:http2');
  const { app, port } = await startServer(t, { H2: '1' });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  const get = (p) =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': p });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        body += d;
      });
      stream.on('end', () => resolve(body));
      stream.on('error', reject);
    });
  assert.equal(await get('/fast'), 'fast');
  const slow = get('/slow?ms=800');
  await app.waitFor(/^slow request started$/);
  const sent = Date.now();
  app.child.kill('SIGTERM');
  assert.equal(await slow, 'slow 800');
  const { code, at } = await app.exited;
  assert.equal(code, 0);
  assert.ok(at - sent < 5000, `exit took ${at - sent} ms`);
});
