'use strict';

// Draining HTTP servers. server.close() alone is not enough (Node 19+ closes
// only the connections idle at that moment): a keep-alive client that keeps
// sending keeps its connection, and a response in flight at shutdown leaves
// its socket open until keepAliveTimeout. So in-flight responses get
// `Connection: close`, sockets are ended when their last response is done,
// and whatever is left at the drain deadline is destroyed.

const { addDrain } = require('./shutdown');

const registered = new WeakSet();
let count = 0;

function graceful(server, opts = {}) {
  if (!server || typeof server.close !== 'function' || typeof server.on !== 'function') {
    throw new TypeError('graceful(server): expected an http, https or http2 server');
  }
  if (registered.has(server)) return server;
  registered.add(server);
  const name = opts.name || `server #${++count}`;
  const drain = isHttp2(server) ? http2Drainer(server) : http1Drainer(server);
  addDrain({ name, drain }, opts);
  return server;
}

function isHttp2(server) {
  const kind = server.constructor && server.constructor.name;
  return kind === 'Http2Server' || kind === 'Http2SecureServer';
}

// Resolves once `server` has emitted 'close', whether it is closed now or
// was closed before (by the app itself, say).
function closeServer(server, wasClosed) {
  return new Promise((resolve) => {
    if (wasClosed()) return resolve();
    server.once('close', resolve);
    try {
      server.close();
    } catch {
      // Not listening: 'close' still comes once its connections are gone.
    }
  });
}

function watchClose(server) {
  let closed = false;
  server.once('close', () => {
    closed = true;
  });
  return () => closed;
}

function http1Drainer(server) {
  const connections = new Set(); // raw sockets, destroyed at the deadline
  const responses = new Map(); // in-flight response -> its socket
  let draining = false;
  const wasClosed = watchClose(server);

  server.on('connection', (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });

  // Prepended so the response is counted before the app's handler can
  // answer it. Kept to one Map entry and one listener: this runs on every
  // request.
  server.prependListener('request', (req, res) => {
    responses.set(res, req.socket);
    if (draining) closeAfterResponse(res);
    res.on('close', () => {
      const socket = responses.get(res);
      responses.delete(res);
      if (draining) endIfIdle(socket);
    });
  });

  function endIfIdle(socket) {
    if (socket.destroyed) return;
    for (const other of responses.values()) if (other === socket) return; // pipelined
    // Headers went out before shutdown, so the client may still think the
    // connection is reusable; end it now that nothing is in flight on it.
    socket.end();
  }

  return async function drain(forceAt) {
    draining = true;
    const closed = closeServer(server, wasClosed);
    for (const res of responses.keys()) closeAfterResponse(res);
    // Node's own connection list (18.2+) also knows the requests whose
    // headers are still arriving, which must not be cut.
    server.closeIdleConnections();

    let timer;
    const forced = new Promise((resolve) => {
      timer = setTimeout(() => {
        const cut = responses.size;
        for (const socket of connections) socket.destroy();
        for (const socket of responses.values()) socket.destroy();
        resolve(cut);
      }, Math.max(0, forceAt - Date.now()));
    });
    const result = await Promise.race([closed.then(() => 0), forced]);
    clearTimeout(timer);
    return result;
  };
}

function closeAfterResponse(res) {
  if (!res.headersSent) {
    // Node then ends the socket itself once this response is written.
    res.setHeader('Connection', 'close');
    res.shouldKeepAlive = false;
  }
}

function http2Drainer(server) {
  const sessions = new Set();
  const wasClosed = watchClose(server);
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });

  return async function drain(forceAt) {
    const closed = closeServer(server, wasClosed);
    // GOAWAY: no new streams; the session closes when its streams are done.
    for (const session of sessions) session.close();

    let timer;
    const forced = new Promise((resolve) => {
      timer = setTimeout(() => {
        const cut = sessions.size;
        for (const session of sessions) session.destroy();
        resolve(cut);
      }, Math.max(0, forceAt - Date.now()));
    });
    const result = await Promise.race([closed.then(() => 0), forced]);
    clearTimeout(timer);
    return result;
  };
}

module.exports = { graceful };
