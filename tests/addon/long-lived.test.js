'use strict';

// drain.js and long-lived.js in-process: a drain asks WebSocket (ws,
// socket.io) connections and server-sent event streams to go, leaves other
// upgraded connections alone, and follows graceful(server, { websockets }).

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { WebSocketServer, WebSocket } = require('ws');
const { Server: SocketIoServer } = require('socket.io');
const { io: socketIoClient } = require('socket.io-client');
const { drainer } = require('../../npm/rsup/lib/drain');
const { WEBSOCKETS } = require('../../npm/rsup/lib/long-lived');

async function listen(t, server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections?.();
    server.close();
  });
  return server.address().port;
}

function wsClient(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  ws.on('error', () => {});
  return { ws, closed, open: new Promise((r) => ws.on('open', r)) };
}

function wsEchoServer() {
  const server = http.createServer((req, res) => res.end('http'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
  return { server, wss };
}

test('ws: on a reload each client gets a clean close, 1012 Service Restart, and the drain ends when they are gone', async (t) => {
  const { server } = wsEchoServer();
  const drain = drainer(server);
  const port = await listen(t, server);
  const clients = [wsClient(port), wsClient(port), wsClient(port)];
  await Promise.all(clients.map((c) => c.open));

  // No deadline: the drain resolves only if the connections close.
  const cut = await drain(undefined, 0, 'reload');
  assert.equal(cut, 0);
  for (const c of clients) assert.deepEqual(await c.closed, { code: 1012, reason: 'Service Restart' });
});

test('ws: on a stop, or when nobody says why, clients get 1001 Going Away', async (t) => {
  for (const reason of ['stop', undefined]) {
    const { server } = wsEchoServer();
    const drain = drainer(server);
    const port = await listen(t, server);
    const client = wsClient(port);
    await client.open;
    assert.equal(await drain(undefined, 0, reason), 0);
    assert.deepEqual(await client.closed, { code: 1001, reason: 'Going Away' }, `reason ${reason}`);
  }
});

test('socket.io: clients see a transport close and reconnect on their own', async (t) => {
  const server = http.createServer();
  const ioServer = new SocketIoServer(server);
  ioServer.on('connection', (socket) => socket.on('echo', (m, ack) => ack(m)));
  const drain = drainer(server);
  const port = await listen(t, server);
  const client = socketIoClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
  t.after(() => client.close());
  await new Promise((r) => client.on('connect', r));
  assert.equal(await client.emitWithAck('echo', 'hi'), 'hi');
  const reason = new Promise((r) => client.on('disconnect', r));

  assert.equal(await drain(undefined, 0), 0);
  // "transport close" is the reason socket.io's client reconnects for;
  // "io server disconnect" would leave it disconnected.
  assert.equal(await reason, 'transport close');
});

test('server-sent events: the stream is ended and its socket closed; later writes of the app do no harm', async (t) => {
  let writesAfterEnd = 0;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
    const timer = setInterval(() => {
      if (res.writableEnded) writesAfterEnd++;
      res.write('data: tick\n\n');
    }, 5);
    res.on('close', () => setTimeout(() => clearInterval(timer), 50));
  });
  const drain = drainer(server);
  const port = await listen(t, server);
  // A client that would keep the connection for its next request.
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  let socket;
  const body = await new Promise((resolve, reject) => {
    http
      .get({ port, host: '127.0.0.1', path: '/events', agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
          if (text.includes('first')) drain(undefined, 60_000).catch(reject);
        });
        // 'end' comes only with the chunked body's last chunk: a clean end.
        res.on('end', () => resolve({ text }));
        res.on('error', reject);
      })
      .on('socket', (s) => (socket = s))
      .on('error', reject);
  });
  assert.match(body.text, /data: first/);
  // The socket goes though the idle grace (60 s) is not over.
  await new Promise((r) => (socket.destroyed ? r() : socket.on('close', r)));
  await new Promise((r) => setTimeout(r, 80));
  assert.ok(writesAfterEnd > 0, 'the app went on writing after the end');
});

test('an upgraded connection of an unknown protocol is left alone until the deadline', async (t) => {
  const server = http.createServer();
  server.on('upgrade', (req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: custom\r\nConnection: Upgrade\r\n\r\n');
  });
  const drain = drainer(server);
  const port = await listen(t, server);
  const raw = net.connect(port, '127.0.0.1');
  let received = '';
  raw.on('data', (d) => (received += d));
  raw.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: custom\r\nConnection: Upgrade\r\n\r\n');
  await new Promise((r) => raw.once('data', r));
  const closed = new Promise((r) => raw.on('close', r));

  const cut = await drain(Date.now() + 300, 0);
  assert.equal(cut, 0, 'no response was cut: the connection is not a request');
  await closed;
  assert.equal(received.split('\r\n\r\n')[1], '', 'nothing was written into the protocol');
});

test('graceful(server, { websockets: false }) leaves WebSockets to the app', async (t) => {
  const { server } = wsEchoServer();
  server[WEBSOCKETS] = false;
  const drain = drainer(server);
  const port = await listen(t, server);
  const client = wsClient(port);
  await client.open;
  await drain(Date.now() + 200, 0);
  assert.equal((await client.closed).code, 1006, 'destroyed at the deadline, no close frame');
});

test('graceful(server, { websockets: fn }) gets the open upgraded sockets once', async (t) => {
  const { server, wss } = wsEchoServer();
  const calls = [];
  server[WEBSOCKETS] = (sockets, info) => {
    calls.push([sockets.length, info.reason]);
    for (const ws of wss.clients) ws.close(1001, 'bye');
  };
  const drain = drainer(server);
  const second = drainer(server); // as the preload's and the app's both drain it
  const port = await listen(t, server);
  const clients = [wsClient(port), wsClient(port)];
  await Promise.all(clients.map((c) => c.open));
  await Promise.all([drain(undefined, 0, 'stop'), second(undefined, 0, 'stop')]);
  assert.deepEqual(calls, [[2, 'stop']]);
  for (const c of clients) assert.deepEqual(await c.closed, { code: 1001, reason: 'bye' });
});

test('graceful(server, { websockets }) refuses what is neither a boolean nor a function', () => {
  const { graceful } = require('../../npm/rsup/lib/graceful');
  const server = http.createServer();
  assert.throws(() => graceful(server, { websockets: 'close' }), /expected true, false or a function/);
  assert.equal(server[WEBSOCKETS], undefined);
});

test('a client that never answers the close frame is let go by dropLeaving()', async (t) => {
  const { server } = wsEchoServer();
  const drain = drainer(server);
  const port = await listen(t, server);
  const deaf = wsClient(port);
  const polite = wsClient(port);
  await Promise.all([deaf.open, polite.open]);
  deaf.ws._socket.pause(); // reads nothing more: no close frame, no answer

  let drained = false;
  const done = drain(undefined, 0, 'reload').then(() => (drained = true));
  assert.equal((await polite.closed).code, 1012);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(drained, false, 'the drain waits for the client that did not answer');
  drain.dropLeaving();
  await done;
});

test('an event stream that starts during the drain is ended as it starts, with Connection: close', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/plain') return res.end('plain');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: hello\n\n');
    const timer = setInterval(() => res.write('data: tick\n\n'), 5);
    req.on('close', () => clearInterval(timer));
  });
  const drain = drainer(server);
  const port = await listen(t, server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const get = (path) =>
    new Promise((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path, agent }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ text, headers: res.headers }));
        })
        .on('error', reject);
    });
  await get('/plain'); // leaves an idle keep-alive connection
  drain(undefined, 60_000);
  const stream = await get('/events'); // on that connection, in the grace
  assert.equal(stream.headers.connection, 'close');
  assert.equal(stream.text, 'data: hello\n\n');
});
