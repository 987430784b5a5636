'use strict';

// The shutdown sequence. When the process is asked to stop (a signal, the
// `shutdown` IPC message or rsup's shutdown message), three phases run
// within one deadline, a safety margin before the supervisor's SIGKILL:
//   1. servers passed to graceful() stop accepting and drain, all at once;
//   2. tracked background work settles (including work started while
//      draining);
//   3. onShutdown handlers run one at a time, last registered first, each
//      given { reason } (shutdown-reason.js: 'reload', 'stop', 'unknown').
// Servers drain first whatever the registration order, so a handler that
// closes a database never runs under requests that still use it.

const os = require('node:os');
const { current, sdNotify } = require('./supervisor');
const { log, describeError } = require('./log');
const { shutdownReason } = require('./shutdown-reason');

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_MARGIN_MS = 250;
// Time kept back from draining for tracked work and handlers.
const MAX_CLEANUP_RESERVE_MS = 1000;

const state = {
  armed: false,
  shuttingDown: false,
  reason: 'unknown', // why, once shutting down
  timeoutMs: undefined, // opts.timeout, for when no supervisor states one
  handlers: [],
  drains: [],
  tracked: new Set(),
  failed: false,
  pending: [], // names not yet finished, for the deadline report
  deadlineAt: 0,
  deadlineTimer: null,
};

function budgetMs(fromSupervisor) {
  if (fromSupervisor > 0) return fromSupervisor;
  if (current.killTimeoutMs) return current.killTimeoutMs;
  return state.timeoutMs ?? DEFAULT_TIMEOUT_MS;
}

function killSignal() {
  const name = current.killSignal || 'SIGINT';
  // SIGKILL and SIGSTOP cannot be caught; fall back to PM2's default.
  if (!os.constants.signals[name] || name === 'SIGKILL' || name === 'SIGSTOP') return 'SIGINT';
  return name;
}

// Installs the triggers. Only once the app uses the package's shutdown
// features: a SIGINT handler disables Node's default exit on SIGINT.
function arm(opts) {
  if (opts && opts.timeout > 0) state.timeoutMs = opts.timeout;
  if (state.armed) return;
  state.armed = true;

  for (const signal of new Set([killSignal(), 'SIGTERM'])) {
    process.on(signal, () => begin(signal));
  }

  if (typeof process.send === 'function' && process.channel) {
    process.on('message', onIpcMessage);
    // Our listener must not keep the process alive; the app's own
    // 'message' listeners still do, as Node counts them.
    if (typeof process.channel.unrefCounted === 'function') process.channel.unrefCounted();
    else process.channel.unref();
  }

  if (current.kind === 'rsup') {
    current.channel.onShutdown((deadlineMs, reason) => begin('rsup shutdown message', deadlineMs, reason));
  }
}

function onIpcMessage(message) {
  // PM2's shutdown_with_message.
  if (message === 'shutdown') begin('shutdown message');
}

// `trigger` names what asked, for the log; `reason` is why, when rsup says
// (a signal or PM2's message does not).
function begin(trigger, supervisorDeadlineMs, reason) {
  const now = Date.now();
  if (state.shuttingDown) {
    // rsup sends its message and the kill signal together; whichever comes
    // second may only bring the deadline closer.
    if (supervisorDeadlineMs > 0) setDeadline(now, supervisorDeadlineMs, true);
    // The signal came first: the message still says why, for the handlers.
    if (state.reason === 'unknown') state.reason = shutdownReason(reason);
    return;
  }
  state.shuttingDown = true;
  state.reason = shutdownReason(reason);
  const budget = budgetMs(supervisorDeadlineMs);
  setDeadline(now, budget, false);
  const why = state.reason === 'unknown' ? '' : ` (${state.reason})`;
  log(`shutting down (${trigger}), ${state.deadlineAt - now} ms to finish${why}`);
  if (current.kind === 'systemd') sdNotify('STOPPING=1');
  run(now).then(finish, (err) => {
    log(`shutdown failed: ${describeError(err)}`);
    finish(1);
  });
}

function setDeadline(now, budget, onlyEarlier) {
  const margin = Math.min(MAX_MARGIN_MS, budget * 0.1);
  const at = now + budget - margin;
  if (onlyEarlier && at >= state.deadlineAt) return;
  state.deadlineAt = at;
  clearTimeout(state.deadlineTimer);
  state.deadlineTimer = setTimeout(onDeadline, Math.max(0, at - now));
}

async function run(startedAt) {
  // Phase 1: servers. Whatever is left at forceAt is destroyed.
  const span = state.deadlineAt - startedAt;
  const forceAt = state.deadlineAt - Math.min(MAX_CLEANUP_RESERVE_MS, span * 0.25);
  state.pending = state.drains.map((d) => d.name);
  await Promise.all(
    state.drains.map(async (d) => {
      try {
        const forced = await d.drain(forceAt, undefined, state.reason);
        if (forced > 0) {
          log(`${d.name}: ${forced} request(s) still running at the drain deadline were cut off`);
          state.failed = true;
        }
      } catch (err) {
        log(`${d.name}: drain failed: ${describeError(err)}`);
        state.failed = true;
      }
      remove(state.pending, d.name);
    }),
  );

  // Phase 2: tracked work, until none is left.
  while (state.tracked.size > 0) {
    state.pending = [`${state.tracked.size} tracked task(s)`];
    await Promise.allSettled([...state.tracked]);
  }

  // Phase 3: handlers, last registered first.
  const handlers = state.handlers.slice().reverse();
  const info = Object.freeze({ reason: state.reason });
  state.pending = handlers.map((h) => h.name);
  for (const h of handlers) {
    try {
      await h.fn(info);
    } catch (err) {
      log(`shutdown handler "${h.name}" failed: ${describeError(err)}`);
      state.failed = true;
    }
    state.pending.shift();
  }
  return state.failed ? 1 : 0;
}

function remove(list, item) {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

function onDeadline() {
  const names = state.pending.map((n) => `"${n}"`).join(', ');
  log(`shutdown deadline reached; unfinished: ${names || 'nothing'}`);
  finish(1);
}

function finish(code) {
  clearTimeout(state.deadlineTimer);
  process.exit(code);
}

let anonymous = 0;

function onShutdown(fn, opts = {}) {
  if (typeof fn !== 'function') throw new TypeError('onShutdown(fn): fn must be a function');
  const entry = { fn, name: opts.name || fn.name || `handler #${++anonymous}` };
  state.handlers.push(entry);
  arm(opts);
  return () => remove(state.handlers, entry);
}

function addDrain(drain, opts) {
  state.drains.push(drain);
  arm(opts);
}

function track(work) {
  let promise;
  if (typeof work === 'function') {
    try {
      promise = Promise.resolve(work());
    } catch (err) {
      promise = Promise.reject(err);
    }
  } else {
    promise = Promise.resolve(work);
  }
  state.tracked.add(promise);
  promise.then(
    () => state.tracked.delete(promise),
    (err) => {
      state.tracked.delete(promise);
      log(`tracked work failed: ${describeError(err)}`);
      if (state.shuttingDown) state.failed = true;
    },
  );
  arm();
  return promise;
}

function isShuttingDown() {
  return state.shuttingDown;
}

module.exports = { onShutdown, addDrain, track, isShuttingDown, begin };
