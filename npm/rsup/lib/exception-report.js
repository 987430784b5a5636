'use strict';

// Tells the supervisor about an uncaught exception before the process
// dies, as PM2's process container does: `{ type: 'process:exception',
// data }` on Node's IPC channel, which the daemon puts on its bus (the
// Node API's launchBus) like any `{ type, data }` message. Node's
// 'uncaughtExceptionMonitor' only observes: the app crashes (or its own
// 'uncaughtException' handler runs) exactly as it would without rsup. A
// promise rejection nothing handles reaches it too when Node turns it
// into an uncaught exception (its default).
//
// The IPC channel rather than rsup's worker channel: every Node process
// rsup starts has it, with or without the addon, and process.send writes
// at once when nothing is queued before it, so the line is in the
// socket before the process exits.

function install() {
  if (typeof process.send !== 'function') return;
  // Taken now: an app that replaces process.send later does not lose it.
  const send = process.send.bind(process);
  process.on('uncaughtExceptionMonitor', (err) => {
    if (!process.connected) return;
    try {
      send({ type: 'process:exception', data: describe(err) });
    } catch {
      // The channel is gone: nothing to tell.
    }
  });
}

// PM2's data: the error's own properties (message, stack, and an app's
// own such as code), each only if it survives JSON, plus its name. A
// thrown value that is not an object is its message.
function describe(err) {
  if (err === null || typeof err !== 'object') {
    return { message: err === undefined ? 'undefined was thrown' : String(err) };
  }
  const data = {};
  if (typeof err.name === 'string') data.name = err.name;
  for (const key of Object.getOwnPropertyNames(err)) {
    try {
      const value = err[key];
      if (JSON.stringify(value) !== undefined) data[key] = value;
    } catch {
      // A getter that throws or a circular value: left out.
    }
  }
  if (data.message === undefined) data.message = String(err);
  return data;
}

module.exports = { install, describe };
