'use strict';

// Which supervisor runs this process, and how to tell it we are ready.
// Detected once, at require time, because rsup's channel must be claimed
// (its variable removed, its descriptor made close-on-exec) before the app
// spawns children of its own.

const { loadBinding } = require('./binding');
const { log } = require('./log');

const env = process.env;

function detect() {
  if (env.RSUP_FD !== undefined) {
    const info = claimRsup();
    if (info) return info;
  }
  // Under rsup, Node apps have an IPC channel too, so rsup is checked first.
  if (typeof process.send === 'function' && env.pm_id !== undefined) {
    return { kind: 'pm2', killTimeoutMs: positive(env.kill_timeout) ?? 1600, killSignal: 'SIGINT' };
  }
  if (env.NOTIFY_SOCKET) return { kind: 'systemd' };
  return { kind: 'none' };
}

function claimRsup() {
  const killTimeoutMs = positive(env.RSUP_KILL_TIMEOUT_MS) ?? 1600;
  const killSignal = env.RSUP_KILL_SIGNAL || 'SIGINT';
  // The addon reads RSUP_FD from the C environment, so it claims the
  // channel before the variables go.
  const { binding, errors } = loadBinding();
  const open = Boolean(binding && binding.workerChannelOpen());
  // Removed, as Node does with NODE_CHANNEL_FD: the app's children are not
  // rsup's workers.
  delete env.RSUP_FD;
  delete env.RSUP_KILL_TIMEOUT_MS;
  delete env.RSUP_KILL_SIGNAL;

  if (open) {
    return { kind: 'rsup', native: binding, killTimeoutMs, killSignal };
  }
  if (typeof process.send === 'function') {
    // rsup also accepts PM2's `ready` over Node's channel.
    if (!binding) log(`native addon unavailable, using Node IPC: ${errors.join('; ')}`);
    return { kind: 'rsup', native: null, killTimeoutMs, killSignal };
  }
  // A stale variable inherited from elsewhere: not rsup's worker.
  return null;
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

function ready() {
  if (readySent) return;
  readySent = true;
  try {
    switch (current.kind) {
      case 'rsup':
        if (current.native) current.native.workerSendReady();
        else process.send('ready');
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
