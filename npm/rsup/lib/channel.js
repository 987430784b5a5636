'use strict';

// rsup's worker channel, claimed once per process and shared. The preload
// and the app's own require('rsup') (perhaps another copy of the package,
// with its own addon) must use one channel: the first to claim RSUP_FD
// publishes it on globalThis, later copies reuse it. Keep this object's
// shape stable: copies of different versions meet here.

const { loadBinding } = require('./binding');
const { log } = require('./log');

const KEY = Symbol.for('rsup.channel');
// Generous: the answer blocks server.listen(), but a loaded daemon on a
// busy machine may take a while to bind.
const LISTEN_TIMEOUT_MS = 10_000;

function positive(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

// The shared channel, or null when this process is not an rsup worker.
function claimChannel() {
  if (KEY in globalThis) return globalThis[KEY];
  const channel = process.env.RSUP_FD === undefined ? null : open();
  Object.defineProperty(globalThis, KEY, { value: channel, enumerable: false });
  return channel;
}

function open() {
  const env = process.env;
  const killTimeoutMs = positive(env.RSUP_KILL_TIMEOUT_MS) ?? 1600;
  const killSignal = env.RSUP_KILL_SIGNAL || 'SIGINT';
  // With wait_ready the preload holds its servers' accepting until ready,
  // or until listen_timeout when the supervisor treats it as ready anyway.
  const waitReady = env.RSUP_WAIT_READY === '1';
  const listenTimeoutMs = positive(env.RSUP_LISTEN_TIMEOUT_MS) ?? 8000;
  // The addon reads RSUP_FD from the C environment, so it claims the
  // channel before the variables go.
  const { binding, errors } = loadBinding();
  const native = Boolean(binding && binding.workerChannelOpen());
  // Removed, as Node does with NODE_CHANNEL_FD: the app's children are not
  // rsup's workers.
  delete env.RSUP_FD;
  delete env.RSUP_KILL_TIMEOUT_MS;
  delete env.RSUP_KILL_SIGNAL;
  delete env.RSUP_WAIT_READY;
  delete env.RSUP_LISTEN_TIMEOUT_MS;

  if (!native) {
    // rsup also accepts PM2's `ready` over Node's channel.
    if (typeof process.send !== 'function') return null; // a stale variable
    if (!binding) log(`native addon unavailable, using Node IPC: ${errors.join('; ')}`);
    const fallback = {
      native: false,
      killTimeoutMs,
      killSignal,
      waitReady,
      listenTimeoutMs,
      readySent: false,
      ready() {
        fallback.readySent = true;
        process.send('ready');
      },
      listen: null,
      drained() {},
      onShutdown: () => () => {},
      onAccept: () => () => {},
      onClosed: () => () => {},
    };
    return fallback;
  }

  const listeners = new Set();
  let lastDeadlineMs = null;
  let lastReason;
  // Watched from the start, so a shutdown reaches listeners added later.
  // An addon older than the reason passes none.
  binding.workerWatchShutdown((deadlineMs, reason) => {
    lastDeadlineMs = deadlineMs;
    lastReason = reason ?? undefined;
    for (const fn of [...listeners]) fn(deadlineMs, lastReason);
  });

  const acceptListeners = new Set();
  let accepted = false;
  // An addon older than the `accept` message has no watcher for it.
  if (typeof binding.workerWatchAccept === 'function') {
    binding.workerWatchAccept(() => {
      accepted = true;
      for (const fn of [...acceptListeners]) fn();
    });
  }

  const closedListeners = new Set();
  let closed = false;
  if (typeof binding.workerWatchClosed === 'function') {
    binding.workerWatchClosed(() => {
      closed = true;
      for (const fn of [...closedListeners]) fn();
    });
  }

  const channel = {
    native: true,
    killTimeoutMs,
    killSignal,
    waitReady,
    listenTimeoutMs,
    // Set by ready(), so a listener added later knows it was said.
    readySent: false,
    ready() {
      channel.readySent = true;
      binding.workerSendReady();
    },
    // { fd } or { code, errno, message }; throws if the supervisor does
    // not answer (one that does not hand out sockets never does).
    listen: (target) => binding.workerListen(target, LISTEN_TIMEOUT_MS),
    drained: () => binding.workerSendDrained(),
    // Calls fn(deadlineMs, reason) on shutdown, at once if it already came.
    // reason: 'reload' or 'stop'; undefined when the supervisor did not say.
    onShutdown(fn) {
      listeners.add(fn);
      if (lastDeadlineMs !== null) process.nextTick(fn, lastDeadlineMs, lastReason);
      return () => listeners.delete(fn);
    },
    // Calls fn() when the supervisor says to accept connections (it treats
    // the app as ready without its `ready`), at once if it already did.
    onAccept(fn) {
      acceptListeners.add(fn);
      if (accepted) process.nextTick(fn);
      return () => acceptListeners.delete(fn);
    },
    // Calls fn() once the channel closes (the supervisor died), at once if
    // it already did.
    onClosed(fn) {
      closedListeners.add(fn);
      if (closed) process.nextTick(fn);
      return () => closedListeners.delete(fn);
    },
  };
  return channel;
}

module.exports = { claimChannel };
