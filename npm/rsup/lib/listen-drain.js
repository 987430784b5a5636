'use strict';

// What the preload does with the servers it gave a supervisor socket to,
// when rsup says shutdown: stop accepting at once, wind their connections
// down (drain.js: `Connection: close` on responses in flight and on the
// next request of idle keep-alive connections, which are closed after a
// short grace) and report `drained` once none is left,
// or at the supervisor's deadline. The process is not exited here: the
// kill signal that follows does that, through the app's handler or Node's
// default. Until then the process is held open, as its listening servers
// held it before, so an app whose handler calls server.close(cb) still
// sees the signal instead of exiting on its own first.
//
// When the supervisor dies (its channel closes), no shutdown message can
// come: the daemon that takes its place starts new processes on the same
// sockets and stops this one with the kill signal alone. From then on that
// signal starts the same drain, and the process ends by the signal once
// it is done, so no connection is cut.

const { drainer } = require('./drain');

function createListenDrain(channel) {
  const drains = new WeakMap(); // server -> drain(), attached once
  const live = new Set(); // servers with a supervisor socket, until 'close'
  const closedByUs = new WeakSet();
  let started = false;

  // Called before the server can accept: connections are counted from the
  // first.
  function adopt(server) {
    if (!drains.has(server)) {
      drains.set(server, drainer(server));
      server.close = closeKeepingCallback;
    }
    live.add(server);
    server.once('close', () => live.delete(server));
  }

  // server.close(cb) on a server already closed here calls cb once the
  // server has drained, without ERR_SERVER_NOT_RUNNING: an app whose signal
  // handler is `server.close(() => process.exit(0))` still exits as it
  // means to.
  function closeKeepingCallback(cb) {
    const inherited = Object.getPrototypeOf(this).close;
    if (typeof cb === 'function' && closedByUs.has(this) && !this._handle) {
      this.once('close', () => cb());
      return inherited.call(this);
    }
    return inherited.call(this, cb);
  }

  // Stops the servers accepting and drains them; calls done() once they
  // are drained, or at half the deadline (when rsup stops waiting).
  // `reason` ('reload', 'stop') picks what WebSocket clients are told.
  function drainAll(deadlineMs, reason, done) {
    started = true;
    const servers = [...live];
    for (const server of servers) if (server.listening) closedByUs.add(server);
    let sent = false;
    const report = () => {
      if (sent) return;
      sent = true;
      clearTimeout(timer);
      done();
    };
    // The supervisor stops waiting at half its deadline anyway. Clients
    // asked to go that have not answered by then are let go, so that the
    // app's own server.close() on the signal that follows can finish.
    const giveUp = () => {
      for (const server of servers) drains.get(server).dropLeaving?.();
      report();
    };
    const timer = setTimeout(giveUp, Math.max(0, deadlineMs / 2));
    timer.unref();
    // Idle connections must be closed well before rsup stops waiting.
    const idleGraceMs = Math.min(1000, deadlineMs / 4);
    Promise.all(servers.map((server) => drains.get(server)(undefined, idleGraceMs, reason))).then(report, report);
  }

  // `reason` is undefined from a supervisor older than it.
  function onShutdown(deadlineMs, reason) {
    if (started) return;
    drainAll(deadlineMs, reason, () => {
      try {
        channel.drained();
      } catch {
        // The supervisor is gone; nobody is waiting for this.
      }
    });
    holdUntilSignal(channel.killSignal, deadlineMs);
  }

  // The supervisor is gone: its successor's kill signal drains first.
  // That successor has started new processes on the same sockets before it
  // signals (recovery after a crash, `rsup update`), so the app goes on.
  // The app's own handlers of that signal are held back until then, as a
  // supervisor's shutdown message comes before the signal (a handler's
  // server.close() would otherwise close keep-alive connections at once);
  // without any, the process then ends by the signal.
  function orphaned() {
    const signal = channel.killSignal;
    if (started || !catchable(signal)) return;
    const held = process.listeners(signal);
    for (const fn of held) process.removeListener(signal, fn);
    const onSignal = () => {
      process.removeListener(signal, onSignal);
      // Kept alive until drained, whatever else the app holds.
      const hold = setInterval(() => {}, 1000);
      drainAll(channel.killTimeoutMs, 'reload', () => {
        clearInterval(hold);
        for (const fn of held) process.on(signal, fn);
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
        else process.emit(signal, signal);
      });
    };
    process.on(signal, onSignal);
  }

  return { adopt, onShutdown, orphaned };
}

function catchable(signal) {
  // Only at shutdown: the preload loads nothing it does not need at start.
  const os = require('node:os');
  return Boolean(os.constants.signals[signal]) && signal !== 'SIGKILL' && signal !== 'SIGSTOP';
}

// Keeps the event loop alive until the kill signal, or until shortly
// before SIGKILL would come. If nothing else listens for that signal, it
// is raised again so Node's default (death by the signal) applies as it
// would have without this listener.
function holdUntilSignal(signal, deadlineMs) {
  const caught = catchable(signal);
  const margin = Math.min(250, deadlineMs * 0.1);
  const hold = setTimeout(release, Math.max(0, deadlineMs - margin));
  if (caught) process.on(signal, onSignal);

  function release() {
    clearTimeout(hold);
    if (caught) process.removeListener(signal, onSignal);
  }
  function onSignal() {
    const alone = process.listenerCount(signal) === 1;
    release();
    if (alone) process.kill(process.pid, signal);
  }
}

module.exports = { createListenDrain };
