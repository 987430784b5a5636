'use strict';

// What the preload sets up in an rsup worker: server.listen() on the
// supervisor's sockets, their drain on shutdown, and with wait_ready the
// gate that keeps them from accepting until the app is ready.
//
// Given with `node -r`, the preload runs in the app's own process and
// claims the worker channel at once. Given through NODE_OPTIONS (an app
// started by a package manager: `npm start` runs the app's node as a
// grandchild), it runs in every Node process of the tree, and claims the
// channel only in the first that listens or says ready: the others (npm
// itself) leave RSUP_FD and its descriptor to their children. The claimer
// then removes the preload from NODE_OPTIONS, so the app's own children
// load it no more.

const fs = require('node:fs');
const path = require('node:path');
const { loadBinding } = require('./binding');
const { claimChannel } = require('./channel');
const { patchListen } = require('./listen-patch');
const { createListenDrain } = require('./listen-drain');
const { createAcceptGate } = require('./accept-gate');
const { guardOutput } = require('./output-guard');

function install({ lazy, preloadPath }) {
  let session; // undefined until claimed; then the session, or null

  function connect() {
    if (session !== undefined) return session;
    const channel = claimChannel();
    if (lazy) forgetPreload(preloadPath);
    session = channel ? attach(channel) : null;
    return session;
  }

  // Node marks inherited descriptors close-on-exec at start-up; until
  // claimed, the channel must reach the children that may claim it.
  if (lazy) passChannelOn();
  patchListen(connect);
  interceptReadyMessage(() => {
    const current = connect();
    if (current && current.gate) current.gate.open();
  });
  if (!lazy) connect();
}

function passChannelOn() {
  const { binding } = loadBinding();
  if (binding && typeof binding.workerChannelPassOn === 'function') binding.workerChannelPassOn();
}

function attach(channel) {
  // Before the daemon can die: the guard must be in place when it does.
  guardOutput();
  let gate = null;
  if (channel.listen) {
    const drain = createListenDrain(channel);
    channel.onShutdown(drain.onShutdown);
    // A copy of the package older than the notice has no onClosed.
    if (typeof channel.onClosed === 'function') channel.onClosed(drain.orphaned);
    // A channel claimed by an older copy of the package may not know
    // wait_ready; its servers then accept at once, as before.
    if (channel.waitReady) {
      gate = createAcceptGate({ listenTimeoutMs: channel.listenTimeoutMs });
      watchReadiness(channel, gate);
    }
    return { channel, adopt: drain.adopt, gate };
  }
  return { channel, adopt: () => {}, gate };
}

// The package's ready() (this copy's or the app's own, which share the
// channel object) opens the gate, as does the supervisor's `accept`.
function watchReadiness(channel, gate) {
  if (channel.readySent) gate.open();
  const ready = channel.ready;
  channel.ready = function readyAndAccept(...args) {
    gate.open();
    return ready.apply(this, args);
  };
  if (typeof channel.onAccept === 'function') channel.onAccept(gate.open);
}

// PM2's process.send('ready') still goes to the supervisor over Node's
// channel, unchanged; onReady runs first.
function interceptReadyMessage(onReady) {
  if (typeof process.send !== 'function') return;
  const send = process.send;
  process.send = function send_(message, ...rest) {
    if (message === 'ready') onReady();
    return send.call(this, message, ...rest);
  };
}

// Removes `--require <preloadPath>` (or `-r`) from NODE_OPTIONS.
function forgetPreload(preloadPath) {
  const options = process.env.NODE_OPTIONS;
  if (!options) return;
  const words = splitNodeOptions(options);
  const kept = [];
  for (let i = 0; i < words.length; i++) {
    const named = requiredAt(words, i);
    if (named !== null && samePath(named.file, preloadPath)) {
      i += named.words - 1;
      continue;
    }
    kept.push(words[i]);
  }
  if (kept.length === words.length) return;
  if (kept.length === 0) delete process.env.NODE_OPTIONS;
  else process.env.NODE_OPTIONS = kept.map(quote).join(' ');
}

// The module `--require X`, `-r X` or `--require=X` at words[i] names, and
// how many words it takes; null for any other option.
function requiredAt(words, i) {
  const w = words[i];
  if ((w === '--require' || w === '-r') && i + 1 < words.length) return { file: words[i + 1], words: 2 };
  if (w.startsWith('--require=')) return { file: w.slice('--require='.length), words: 1 };
  return null;
}

function samePath(given, file) {
  const absolute = path.resolve(given);
  if (absolute === file) return true;
  try {
    return fs.realpathSync(absolute) === file;
  } catch {
    return false;
  }
}

// NODE_OPTIONS as Node splits it: on spaces, with double quotes grouping
// and a backslash escaping the next character inside them.
function splitNodeOptions(text) {
  const words = [];
  let word = null;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\' && i + 1 < text.length) word += text[++i];
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = true;
      word = word ?? '';
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

function quote(word) {
  return /[\s"\\]/.test(word) || word === '' ? `"${word.replace(/[\\"]/g, '\\$&')}"` : word;
}

// Whether this preload was given through NODE_OPTIONS rather than `-r`.
function inNodeOptions(preloadPath) {
  const options = process.env.NODE_OPTIONS;
  if (!options) return false;
  const words = splitNodeOptions(options);
  return words.some((_, i) => {
    const named = requiredAt(words, i);
    return named !== null && samePath(named.file, preloadPath);
  });
}

module.exports = { install, inNodeOptions, forgetPreload, splitNodeOptions };
