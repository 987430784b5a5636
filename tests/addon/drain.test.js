'use strict';

// drain.js in-process: what a drain does to the connections and responses
// of an HTTP/1 server, and what it costs each request before any drain.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { drainer } = require('../../npm/rsup/lib/drain');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// An http server on 127.0.0.1 whose /slow?ms=N answers after N ms, with
// its drain(); `started` counts requests the handler saw.
async function serve(t) {
  const server = http.createServer((req, res) => {
    state.started++;
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') || 0);
    const answer = () => res.end(`done ${req.url}`);
    if (req.url.startsWith('/headers-first')) {
      // Headers out at once, body later: the client thinks it can reuse
      // the connection.
      res.writeHead(200, { 'content-length': String(`done ${req.url}`.length) });
      res.flushHeaders();
    }
    if (ms) setTimeout(answer, ms);
    else answer();
  });
  const state = { server, started: 0, drain: drainer(server) };
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  state.port = server.address().port;
  t.after(() => {
    server.closeAllConnections?.();
    server.close();
  });
  return state;
}

// A raw keep-alive client connection: send() writes raw bytes; responses()
// parses what came back so far; closed resolves when the server ends it.
function connect(port) {
  const socket = net.connect(port, '127.0.0.1');
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (d) => (data += d));
  const closed = new Promise((r) => socket.on('close', () => r(Date.now())));
  socket.on('error', () => {});
  const opened = new Promise((r) => socket.once('connect', r));
  return {
    socket,
    closed,
    opened,
    send: (paths) => socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('')),
    responses() {
      const out = [];
      const re = /HTTP\/1\.1 (\d+)[^\r]*\r\n([\s\S]*?)\r\n\r\n/g;
      let m;
      while ((m = re.exec(data))) {
        const headers = {};
        for (const line of m[2].split('\r\n')) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] || 0);
        const body = data.slice(re.lastIndex, re.lastIndex + len);
        if (body.length < len) break;
        out.push({ status: Number(m[1]), headers, body });
        re.lastIndex += len;
      }
      return out;
    },
    async waitResponses(n, ms = 5000) {
      const end = Date.now() + ms;
      while (this.responses().length < n && Date.now() < end) await sleep(10);
      return this.responses();
    },
  };
}

// First in this file: no drain has run in this process yet.
test('before a drain, nothing of the drain\'s runs per request: no request or response listener, Node\'s writeHead', async (t) => {
  const writeHead = http.ServerResponse.prototype.writeHead;
  // The listeners Node itself puts on a request's server and response, and
  // those on a drained server's.
  const listeners = async (drained) => {
    let count = null;
    const server = http.createServer((req, res) => {
      count = { request: server.listenerCount('request'), close: res.listenerCount('close') };
      res.end('ok');
    });
    if (drained) drainer(server);
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const c = connect(server.address().port);
    c.send(['/', '/pipelined']);
    await c.waitResponses(2);
    c.socket.destroy();
    return count;
  };
  assert.deepEqual(await listeners(true), await listeners(false));
  assert.equal(http.ServerResponse.prototype.writeHead, writeHead);
});

test('a response in flight at the drain goes out with Connection: close and its socket ends', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  c.send(['/slow?ms=300']);
  while (s.started < 1) await sleep(5);
  const drained = s.drain(Date.now() + 5000, 100);
  const [res] = await c.waitResponses(1);
  assert.equal(res.status, 200);
  assert.equal(res.headers.connection, 'close');
  await c.closed;
  assert.equal(await drained, 0);
});

test('an idle keep-alive connection: a request in the grace is answered with Connection: close', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  c.send(['/']);
  await c.waitResponses(1);
  assert.equal(c.responses()[0].headers.connection, 'keep-alive');
  const drained = s.drain(Date.now() + 5000, 500);
  await sleep(50);
  c.send(['/again']);
  const res = await c.waitResponses(2);
  assert.equal(res[1].body, 'done /again');
  assert.equal(res[1].headers.connection, 'close');
  await c.closed;
  assert.equal(await drained, 0);
});

test('an idle keep-alive connection is closed once the grace is over', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  c.send(['/']);
  await c.waitResponses(1);
  const at = Date.now();
  const drained = s.drain(Date.now() + 5000, 200);
  const closedAt = await c.closed;
  assert.ok(closedAt - at >= 150, `closed after ${closedAt - at} ms, before the grace`);
  assert.ok(closedAt - at < 2000, `closed after ${closedAt - at} ms`);
  assert.equal(await drained, 0);
});

test('pipelined requests: the one not yet answered at the drain carries Connection: close', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  await c.opened;
  // The second waits behind the first; both were read before the drain,
  // and the first's headers went out before it.
  c.send(['/headers-first?ms=300&n=1', '/slow?ms=100&n=2']);
  while (s.started < 2) await sleep(5);
  await sleep(20);
  const drained = s.drain(Date.now() + 5000, 100);
  const res = await c.waitResponses(2);
  assert.equal(res.length, 2);
  assert.equal(res[0].body, 'done /headers-first?ms=300&n=1');
  assert.equal(res[0].headers.connection, 'keep-alive');
  assert.equal(res[1].body, 'done /slow?ms=100&n=2');
  assert.equal(res[1].headers.connection, 'close');
  await c.closed;
  assert.equal(await drained, 0);
});

test('pipelined requests: one answered only after the one before it is done carries Connection: close', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  await c.opened;
  // The first's headers go out before the drain and it is done before the
  // second is answered, which is then no longer queued.
  c.send(['/headers-first?ms=150&n=1', '/slow?ms=400&n=2']);
  while (s.started < 2) await sleep(5);
  await sleep(20);
  const drained = s.drain(Date.now() + 5000, 100);
  const res = await c.waitResponses(2);
  assert.equal(res.length, 2);
  assert.equal(res[0].headers.connection, 'keep-alive');
  assert.equal(res[1].body, 'done /slow?ms=400&n=2');
  assert.equal(res[1].headers.connection, 'close');
  await c.closed;
  assert.equal(await drained, 0);
});

test('headers sent before the drain: the socket ends after the response, once the grace is over', async (t) => {
  const s = await serve(t);
  const c = connect(s.port);
  c.send(['/headers-first?ms=600']);
  while (s.started < 1) await sleep(5);
  await sleep(20);
  const at = Date.now();
  const drained = s.drain(Date.now() + 5000, 100);
  const [res] = await c.waitResponses(1);
  assert.equal(res.headers.connection, 'keep-alive');
  const closedAt = await c.closed;
  assert.ok(closedAt - at < 1500, `ended ${closedAt - at} ms after the drain`);
  assert.equal(await drained, 0);
});

test('at the deadline, what is left is destroyed and counted', async (t) => {
  const s = await serve(t);
  const a = connect(s.port);
  const b = connect(s.port);
  a.send(['/slow?ms=5000']);
  b.send(['/slow?ms=5000']);
  while (s.started < 2) await sleep(5);
  const drained = s.drain(Date.now() + 300, 100);
  assert.equal(await drained, 2);
  await a.closed;
  await b.closed;
  assert.equal(a.responses().length, 0);
});

test('new connections are refused once the drain starts', async (t) => {
  const s = await serve(t);
  const drained = s.drain(Date.now() + 2000, 50);
  await assert.rejects(
    new Promise((resolve, reject) => {
      const sock = net.connect(s.port, '127.0.0.1', () => resolve(sock));
      sock.on('error', reject);
    }),
    { code: 'ECONNREFUSED' },
  );
  assert.equal(await drained, 0);
});
