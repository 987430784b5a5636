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
  // The addon reads RSUP_FD from the C environment, so it claims the
  // channel before the variables go.
  const { binding, errors } = loadBinding();
  const native = Boolean(binding && binding.workerChannelOpen());
  // Removed, as Node does with NODE_CHANNEL_FD: the app's children are not
  // rsup's workers.
  delete env.RSUP_FD;
  delete env.RSUP_KILL_TIMEOUT_MS;
  delete env.RSUP_KILL_SIGNAL;

  if (!native) {
    // rsup also accepts PM2's `ready` over Node's channel.
    if (typeof process.send !== 'function') return null; // a stale variable
    if (!binding) log(`native addon unavailable, using Node IPC: ${errors.join('; ')}`);
    return {
      native: false,
      killTimeoutMs,
      killSignal,
      ready: () => process.send('ready'),
      listen: null,
      drained() {},
      onShutdown: () => () => {},
    };
  }

  const listeners = new Set();
  let lastDeadlineMs = null;
  // Watched from the start, so a shutdown reaches listeners added later.
  binding.workerWatchShutdown((deadlineMs) => {
    lastDeadlineMs = deadlineMs;
    for (const fn of [...listeners]) fn(deadlineMs);
  });

  return {
    native: true,
    killTimeoutMs,
    killSignal,
    ready: () => binding.workerSendReady(),
    // { fd } or { code, errno, message }; throws if the supervisor does
    // not answer (one that does not hand out sockets never does).
    listen: (target) => binding.workerListen(target, LISTEN_TIMEOUT_MS),
    drained: () => binding.workerSendDrained(),
    // Calls fn(deadlineMs) on shutdown, at once if it already came.
    onShutdown(fn) {
      listeners.add(fn);
      if (lastDeadlineMs !== null) process.nextTick(fn, lastDeadlineMs);
      return () => listeners.delete(fn);
    },
  };
}

module.exports = { claimChannel };
