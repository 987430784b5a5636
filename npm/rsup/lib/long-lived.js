'use strict';

// Connections that never end on their own: upgraded ones (WebSocket,
// socket.io's websocket transport, anything that left HTTP through
// 'upgrade') and server-sent event streams. A drain asks them to go, once
// the server has stopped accepting so that their reconnects reach the
// instance that replaces this one:
//   - a WebSocket of the `ws` library (which socket.io also runs on) is
//     closed through its own close(): a clean closing handshake, with 1012
//     Service Restart when the app goes on (clients reconnect) and 1001
//     Going Away when it stops or nobody said (shutdown-reason.js);
//   - an event stream (`Content-Type: text/event-stream`) is ended, which
//     EventSource answers by reconnecting;
//   - other upgraded connections are left alone, since writing into a
//     protocol we do not know could corrupt it: they are waited for, and
//     destroyed at the drain deadline. The app can ask them to go itself
//     (graceful(server, { websockets: fn })).
// An app chooses per server with graceful(server, { websockets }), which
// sets WEBSOCKETS on the server: true (the default above), false (leave
// upgraded connections to the app), or fn(sockets, { reason }) called once
// with the open upgraded sockets.
//
// Marks are symbols in the global registry, so that two copies of the
// package in one process (the preload's and the app's own) agree on them.

const { log, describeError } = require('./log');
const { shutdownReason, closeFrameFor } = require('./shutdown-reason');

const WEBSOCKETS = Symbol.for('rsup.websockets');
const ASKED = Symbol.for('rsup.askedToGo');

const OPEN = 1; // WebSocket readyState

// Asks every open upgraded connection among `sockets` (the HTTP sockets of
// `server`) to go, as the server's WEBSOCKETS option says. `reason`: why
// the process stops ('reload', 'stop'; anything else is unknown).
function askUpgradedToGo(server, sockets, reason) {
  reason = shutdownReason(reason);
  const policy = server[WEBSOCKETS] ?? true;
  if (policy === false) return;
  const upgraded = [];
  for (const socket of sockets) {
    // Node frees the HTTP parser of a socket it hands to 'upgrade'.
    if (socket.destroyed || socket.parser !== null || socket[ASKED]) continue;
    socket[ASKED] = true;
    upgraded.push(socket);
  }
  if (upgraded.length === 0) return;
  if (typeof policy === 'function') {
    try {
      policy(upgraded, { reason });
    } catch (err) {
      log(`graceful(): the websockets function failed: ${describeError(err)}`);
    }
    return;
  }
  const frame = closeFrameFor(reason);
  for (const socket of upgraded) {
    const ws = websocketOf(socket);
    if (ws && ws.readyState === OPEN) ws.close(frame.code, frame.text);
  }
}

function wasAskedToGo(socket) {
  return socket[ASKED] === true;
}

// The `ws` library's WebSocket running on `socket`, or null. ws keeps it
// under a private symbol named 'websocket' (ws 2 to 8).
function websocketOf(socket) {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    if (key.description !== 'websocket') continue;
    const ws = socket[key];
    if (ws && typeof ws.close === 'function' && typeof ws.readyState === 'number') return ws;
  }
  return null;
}

function isEventStream(res) {
  const type = res.getHeader('content-type');
  if (type !== undefined) return /^\s*text\/event-stream/i.test(String(type));
  // writeHead(status, headers) without setHeader() before it keeps the
  // headers only in the block it wrote.
  return typeof res._header === 'string' && /^content-type:\s*text\/event-stream/im.test(res._header);
}

// Ends an event stream the app still writes to. A write of the app after
// this gets an error through its callback, not as an 'error' event that
// nothing listens to (which would crash the app).
function endEventStream(res) {
  if (res.writableEnded || res.destroyed) return;
  res.on('error', ignore);
  res.end();
}

function ignore() {}

module.exports = { askUpgradedToGo, wasAskedToGo, websocketOf, isEventStream, endEventStream, WEBSOCKETS };
