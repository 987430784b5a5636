'use strict';

// Draining servers. server.close() alone is not enough (Node 19+ closes
// only the connections idle at that moment): a keep-alive client that keeps
// sending keeps its connection, and a response in flight at shutdown leaves
// its socket open until keepAliveTimeout. So in-flight responses get
// `Connection: close`, sockets are ended when their last response is done,
// and whatever is left at the drain deadline is destroyed.
//
// A connection idle when the drain starts may have a request on its way:
// closing it then resets that request (the client sees ECONNRESET). So
// idle connections get a grace period, in which their next request is
// answered with `Connection: close`; only those still idle after it are
// closed.
//
// Connections that never end on their own (WebSocket and other upgraded
// ones, server-sent event streams) are asked to go once the server stops
// accepting: long-lived.js.
//
// drainer(server) must be called before the server accepts connections: it
// counts them as they come. It returns drain(forceAt, idleGraceMs, reason),
// which resolves with the number of requests cut off at forceAt (a time
// from Date.now(); none given: wait however long it takes). `reason` (why
// the process stops: shutdown-reason.js) picks what WebSockets are told.

const net = require('node:net');
const { askUpgradedToGo, wasAskedToGo, isEventStream, endEventStream } = require('./long-lived');

const MAX_IDLE_GRACE_MS = 1000;

// The drainer that fits the server: http2, HTTP/1 (http, https, express),
// else plain net/tls.
function drainer(server) {
  if (isHttp2(server)) return http2Drainer(server);
  if (typeof server.closeIdleConnections === 'function') return http1Drainer(server);
  return netDrainer(server);
}

// Asked without loading node:tls, which the preload must not load into
// every app: it brings in all of node:crypto (about 20 modules, 0.3 MB of
// live heap, and start-up garbage that V8 collects again a few seconds
// later). Every tls.Server (https's too) has addContext(); an app that
// made one has loaded tls already.
function isTlsServer(server) {
  return typeof server.addContext === 'function' && server instanceof require('node:tls').Server;
}

function isHttp2(server) {
  const kind = server.constructor && server.constructor.name;
  return kind === 'Http2Server' || kind === 'Http2SecureServer';
}

// Resolves once `server` has emitted 'close', whether it is closed now or
// was closed before (by the app itself, say).
// `close` is the close to call: net's own stops accepting without the
// http server's closing of idle connections.
function closeServer(server, wasClosed, close = server.close) {
  return new Promise((resolve) => {
    if (wasClosed()) return resolve();
    server.once('close', resolve);
    try {
      close.call(server);
    } catch {
      // Not listening: 'close' still comes once its connections are gone.
    }
  });
}

function watchClose(server) {
  let closed = false;
  server.on('close', () => {
    closed = true;
  });
  // A server can listen again after a close.
  server.on('listening', () => {
    closed = false;
  });
  return () => closed;
}

// Servers that are not HTTP: stop accepting, and let connections end.
function netDrainer(server) {
  const connections = new Set();
  const wasClosed = watchClose(server);
  server.on('connection', trackIn(connections));
  return function drain(forceAt) {
    return untilClosedOr(closeServer(server, wasClosed), forceAt, () => {
      const cut = connections.size;
      for (const socket of connections) socket.destroy();
      return cut;
    });
  };
}

// Resolves with 0 once `closed` does, or with force()'s count at forceAt.
async function untilClosedOr(closed, forceAt, force) {
  if (forceAt === undefined) return closed.then(() => 0);
  let timer;
  const forced = new Promise((resolve) => {
    timer = setTimeout(() => resolve(force()), Math.max(0, forceAt - Date.now()));
  });
  const result = await Promise.race([closed.then(() => 0), forced]);
  clearTimeout(timer);
  return result;
}

// Before a drain, nothing here runs per request: the response in flight on
// each connection is found at the drain as the connection's own
// `_httpMessage`, which Node sets while a response is written on it. A
// pipelined request's response waits in a queue only Node sees until the
// ones before it are done; during a drain it is found when it writes its
// headers (still queued: queuedHeaders below) or when Node gives it the
// connection (as the one before it closes), whichever comes first.
function http1Drainer(server) {
  const connections = new Set(); // raw sockets, destroyed at the deadline
  // The sockets HTTP runs on: the raw ones, or for https their TLS sockets.
  const httpSockets = isTlsServer(server) ? new Set() : connections;
  let responses = null; // from the drain on: in-flight response -> its socket
  let graceOver = false;
  const leaving = new WeakSet(); // sockets of ended event streams
  const wasClosed = watchClose(server);

  server.on('connection', trackIn(connections));
  if (httpSockets !== connections) server.on('secureConnection', trackIn(httpSockets));

  // From the drain on. Prepended so that a response is marked before the
  // app's handler can answer it.
  function onRequest(req, res) {
    follow(res, req.socket);
  }
  // A pipelined response about to write its headers while still queued;
  // what it returns runs once they are written (this call of writeHead
  // does not go through follow()'s own wrapper).
  function onQueuedHeaders(res) {
    const socket = res.req && res.req.socket;
    if (!socket || !httpSockets.has(socket) || responses.has(res)) return undefined;
    follow(res, socket);
    return () => {
      if (isEventStream(res)) process.nextTick(endStream, res, socket);
    };
  }

  // A response in flight during the drain: `Connection: close` if its
  // headers are not out yet, and its socket ended once it is done.
  function follow(res, socket) {
    if (responses.has(res)) return;
    responses.set(res, socket);
    if (res.headersSent) {
      if (isEventStream(res)) endStream(res, socket);
    } else {
      // A stream that starts during the drain is ended as it starts.
      endWhenEventStream(res, socket);
    }
    closeAfterResponse(res);
    res.on('close', onFollowedClose);
  }
  // Its client reconnects, on a new connection: the socket goes with it.
  function endStream(res, socket) {
    leaving.add(socket);
    endEventStream(res);
  }
  function endWhenEventStream(res, socket) {
    const writeHead = res.writeHead;
    res.writeHead = function writeHeadThenEnd(...args) {
      const result = writeHead.apply(this, args);
      // After what the app writes along with its headers.
      if (isEventStream(res)) process.nextTick(endStream, res, socket);
      return result;
    };
  }
  function onFollowedClose() {
    const socket = responses.get(this);
    responses.delete(this);
    // As a response finishes, Node gives its connection the next pipelined
    // one, if any.
    const next = socket._httpMessage;
    if (next && next !== this && !socket.destroyed) follow(next, socket);
    endIfIdle(socket);
  }

  function endIfIdle(socket) {
    if (socket.destroyed) return;
    for (const other of responses.values()) if (other === socket) return; // pipelined
    // Headers went out before shutdown, so the client may still think the
    // connection is reusable and be sending its next request already. Within
    // the idle grace it is left like any idle connection (that request is
    // answered with `Connection: close`, or the grace's end closes it);
    // after the grace nothing else would end it.
    if (graceOver || leaving.has(socket)) socket.end();
  }

  // Connections asked to go that are still there (a client that does not
  // answer a close frame) are destroyed when the caller stops waiting.
  drain.dropLeaving = () => {
    for (const socket of httpSockets) if (wasAskedToGo(socket) || leaving.has(socket)) socket.destroy();
  };
  return drain;

  function drain(forceAt, idleGraceMs, reason) {
    if (responses === null) {
      responses = new Map();
      server.prependListener('request', onRequest);
      for (const socket of httpSockets) if (socket._httpMessage) follow(socket._httpMessage, socket);
    }
    // Again for a server that listened again after a drain.
    watchQueuedHeaders(onQueuedHeaders);
    const closed = closeServer(server, wasClosed, net.Server.prototype.close);
    // Its connections are gone with it: no queued response is left to find.
    closed.then(() => queuedHeaders.delete(onQueuedHeaders));
    // Not accepting any more: reconnects go to the server's successor.
    askUpgradedToGo(server, httpSockets, reason);
    const grace = idleGraceMs ?? Math.min(MAX_IDLE_GRACE_MS, forceAt === undefined ? Infinity : (forceAt - Date.now()) / 4);
    // The http server's own close: idle connections (by Node's own list,
    // 18.2+, which also knows requests whose headers are still arriving)
    // are closed, and its connection checks stop.
    const idle = setTimeout(() => {
      graceOver = true;
      server.close();
      // Node 19+ does this in close(); 18 only stops its connection checks.
      server.closeIdleConnections();
    }, Math.max(0, grace));
    closed.then(() => clearTimeout(idle));

    return untilClosedOr(closed, forceAt, () => {
      const cut = responses.size;
      for (const socket of connections) socket.destroy();
      for (const socket of responses.values()) socket.destroy();
      return cut;
    });
  }
}

// What drains in progress call with a response about to write its headers
// while queued behind another on its connection (HTTP pipelining). Node's
// ServerResponse.prototype.writeHead (which its implicit headers go
// through too) is wrapped at the first drain, never before: until a
// process shuts down, its responses run Node's own code alone.
const queuedHeaders = new Set();
let writeHeadWrapped = false;

function watchQueuedHeaders(fn) {
  queuedHeaders.add(fn);
  if (writeHeadWrapped) return;
  writeHeadWrapped = true;
  const { ServerResponse } = require('node:http');
  const writeHead = ServerResponse.prototype.writeHead;
  ServerResponse.prototype.writeHead = function writeHeadWhileDraining(...args) {
    if (this.socket !== null || this.headersSent || queuedHeaders.size === 0) return writeHead.apply(this, args);
    const after = [];
    for (const watcher of queuedHeaders) {
      const then = watcher(this);
      if (then) after.push(then);
    }
    const result = writeHead.apply(this, args);
    for (const then of after) then();
    return result;
  };
}

// A connection listener adding each socket to `set` until it closes; one
// function for all sockets, no closure per connection.
function trackIn(set) {
  function forget() {
    set.delete(this);
  }
  return (socket) => {
    set.add(socket);
    socket.on('close', forget);
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
  server.on('session', trackIn(sessions));

  return function drain(forceAt) {
    const closed = closeServer(server, wasClosed);
    // GOAWAY: no new streams; the session closes when its streams are done.
    for (const session of sessions) session.close();

    return untilClosedOr(closed, forceAt, () => {
      const cut = sessions.size;
      for (const session of sessions) session.destroy();
      return cut;
    });
  };
}

module.exports = { drainer };
