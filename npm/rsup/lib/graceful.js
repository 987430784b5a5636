'use strict';

// graceful(server): drain an HTTP server as part of the shutdown sequence.
// How draining works is in drain.js.

const { addDrain } = require('./shutdown');
const { drainer } = require('./drain');
const { WEBSOCKETS } = require('./long-lived');

// Every server given to graceful(), in order: ready() waits for them to
// listen. Servers live as long as the app, so holding them costs nothing.
const registered = new Set();
let count = 0;

function graceful(server, opts = {}) {
  if (!server || typeof server.close !== 'function' || typeof server.on !== 'function') {
    throw new TypeError('graceful(server): expected an http, https or http2 server');
  }
  const { websockets } = opts;
  if (websockets !== undefined && typeof websockets !== 'boolean' && typeof websockets !== 'function') {
    throw new TypeError('graceful(server, { websockets }): expected true, false or a function');
  }
  // Read at the drain, by this drain and by the preload's for the same server.
  if (websockets !== undefined) server[WEBSOCKETS] = websockets;
  if (registered.has(server)) return server;
  registered.add(server);
  const name = opts.name || `server #${++count}`;
  const drain = drainer(server);
  addDrain({ name, drain }, opts);
  return server;
}

// The servers given to graceful() that are not listening (yet).
function notListening() {
  return [...registered].filter((s) => !s.listening);
}

module.exports = { graceful, notListening };
