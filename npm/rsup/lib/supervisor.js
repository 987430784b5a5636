'use strict';

// Which supervisor runs this process, and how to tell it we are ready.
// Detected once, at require time, because rsup's channel must be claimed
// (its variable removed, its descriptor made close-on-exec) before the app
// spawns children of its own.

const { loadBinding } = require('./binding');
const { claimChannel } = require('./channel');
const { log } = require('./log');

const env = process.env;

function detect() {
  // First, and before anything else looks at the environment: the preload
  // or another copy of this package may have claimed the channel already.
  const channel = claimChannel();
  if (channel) {
    const { killTimeoutMs, killSignal } = channel;
    return { kind: 'rsup', channel, killTimeoutMs, killSignal };
  }
  // Under rsup, Node apps have an IPC channel too, so rsup is checked first.
  if (typeof process.send === 'function' && env.pm_id !== undefined) {
    return { kind: 'pm2', killTimeoutMs: positive(env.kill_timeout) ?? 1600, killSignal: 'SIGINT' };
  }
  if (env.NOTIFY_SOCKET) return { kind: 'systemd' };
  return { kind: 'none' };
}

function positive(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

const current = detect();
let readySent = false;

function sdNotify(state) {
  const { binding, errors } = loadBinding();
  if (!binding) {
    log(`cannot notify systemd (${state}): ${errors.join('; ')}`);
    return;
  }
  try {
    binding.sdNotify(state);
  } catch (err) {
    log(err.message);
  }
}

// A listen error handed to ready() as a callback's argument (express 5's
// `app.listen(port, cb)` passes it on failure).
function isError(value) {
  return value instanceof Error || (value !== null && typeof value === 'object' && 'code' in value);
}

function ready(err) {
  if (readySent) return;
  if (isError(err)) {
    log(`not ready: ${err.message || err.code}`);
    return;
  }
  // A server given to graceful() that is not listening is not ready to
  // serve: wait for it, and never report readiness if its listen fails.
  const { notListening } = require('./graceful');
  const waiting = notListening();
  if (waiting.length > 0) {
    const server = waiting[0];
    const onListening = () => {
      server.removeListener('error', onError);
      ready();
    };
    const onError = (e) => {
      server.removeListener('listening', onListening);
      log(`not ready: ${e.message}`);
    };
    server.once('listening', onListening);
    server.once('error', onError);
    return;
  }
  readySent = true;
  try {
    switch (current.kind) {
      case 'rsup':
        current.channel.ready();
        break;
      case 'pm2':
        if (process.connected) process.send('ready');
        break;
      case 'systemd':
        sdNotify('READY=1');
        break;
      default:
        break;
    }
  } catch (err) {
    log(`could not report readiness to ${current.kind}: ${err.message}`);
  }
}

function supervisor() {
  return current.kind;
}

module.exports = { current, ready, supervisor, sdNotify };
