'use strict';

// With wait_ready, servers listening on the supervisor's sockets take no
// connection until the app says ready. The app's server.listen() completes
// as Node's would ('listening', the callback and address() at once): Node
// opens a handle on the descriptor and then calls handle.listen(), which
// starts accepting; only that last call is held back. The socket itself
// has been listening in the kernel since the supervisor bound it, and its
// one accept queue is shared with the app's other instances, so
// connections meanwhile go to them (or wait in the queue at first start).
//
// The gate opens when the app says ready (process.send('ready') or the
// package's ready()), when the supervisor says `accept` (it treats the app
// as ready without it, at listen_timeout), or, should that message not
// come, once listen_timeout has passed since this process started.

const util = require('node:util');
const { log } = require('./log');

function createAcceptGate({ listenTimeoutMs }) {
  let open = false;
  const held = []; // { server, handle, backlog }
  // A handle that does not accept yet keeps no event loop alive; a held
  // server must, as a listening one does.
  let keepAlive = null;

  const timer = setTimeout(() => {
    if (open) return;
    log(`no ready within listen_timeout (${listenTimeoutMs} ms): accepting connections`);
    openGate();
  }, Math.max(0, listenTimeoutMs - process.uptime() * 1000));
  // Never what keeps the process alive.
  timer.unref();

  function openGate() {
    if (open) return;
    open = true;
    clearTimeout(timer);
    for (const { server, handle, backlog } of held.splice(0)) startAccepting(server, handle, backlog);
    release();
  }

  function release() {
    if (held.length > 0 || keepAlive === null) return;
    clearInterval(keepAlive);
    keepAlive = null;
  }

  // Call right before Node's own listen() of `server` on a supervisor's
  // descriptor; call the function it returns right after. While the gate
  // is shut, the handle Node creates is opened but does not accept.
  function hold(server) {
    if (open) return () => {};
    const own = Object.getOwnPropertyDescriptor(server, '_handle');
    const enumerable = own ? own.enumerable : true;
    const settle = (value) =>
      Object.defineProperty(server, '_handle', { value, writable: true, configurable: true, enumerable });
    let before = server._handle;
    // Node assigns server._handle, then calls its listen() in the same
    // synchronous call; the setter puts a stand-in on that one handle.
    Object.defineProperty(server, '_handle', {
      configurable: true,
      enumerable,
      get: () => before,
      set(handle) {
        before = handle;
        settle(handle);
        if (!handle || typeof handle.listen !== 'function' || open) return;
        handle.listen = function heldListen(backlog) {
          delete handle.listen;
          const entry = { server, handle, backlog };
          held.push(entry);
          keepAlive ??= setInterval(() => {}, 2 ** 30);
          server.once('close', () => {
            const i = held.indexOf(entry);
            if (i >= 0) held.splice(i, 1);
            release();
          });
          return 0;
        };
      },
    });
    return () => {
      const now = Object.getOwnPropertyDescriptor(server, '_handle');
      if (now && now.get) settle(before);
      // A Node that did not call listen() as expected: accept at once
      // rather than never.
      if (server._handle && Object.prototype.hasOwnProperty.call(server._handle, 'listen')) {
        delete server._handle.listen;
        log('could not hold back accepting until ready: accepting at once');
        const err = server._handle.listen(511);
        if (err) fail(server, err);
      }
    };
  }

  return {
    hold,
    open: openGate,
    get isOpen() {
      return open;
    },
  };
}

function startAccepting(server, handle, backlog) {
  // Closed meanwhile (a shutdown before ready).
  if (server._handle !== handle) return;
  const err = handle.listen(backlog);
  if (err) fail(server, err);
}

function fail(server, errno) {
  const err = new Error(`listen ${util.getSystemErrorName(errno)}`);
  err.code = util.getSystemErrorName(errno);
  err.errno = errno;
  err.syscall = 'listen';
  server.close();
  server.emit('error', err);
}

module.exports = { createAcceptGate };
