'use strict';

// PM2's bus (`launchBus`): an EventEmitter of the daemon's events, fed by a
// subscription that `rsup node-api` relays. Like PM2's (axon's
// sub-emitter), a listener may name a pattern: `bus.on('log:*', (stream,
// packet) => ...)` gets 'out' or 'err' first, `bus.on('*', (event, packet)
// => ...)` every event's name first.

const { EventEmitter } = require('node:events');
const relay = require('./relay');
const { processEvent, logEvent, messageEvent } = require('./shape');

function toPattern(event) {
  const escaped = event.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '(.+)')}$`);
}

class Bus extends EventEmitter {
  constructor() {
    super();
    this._patterns = [];
    this._child = null;
    this._timer = null;
    this._closing = false;
    this._socket = null;
  }

  on(event, listener) {
    if (typeof event === 'string' && event.includes('*')) {
      this._patterns.push({ event, re: toPattern(event), listener });
      return this;
    }
    return super.on(event, listener);
  }

  addListener(event, listener) {
    return this.on(event, listener);
  }

  off(event, listener) {
    if (typeof event === 'string' && event.includes('*')) {
      this._patterns = this._patterns.filter(
        (p) => !(p.event === event && (!listener || p.listener === listener)),
      );
      return this;
    }
    return super.off(event, listener);
  }

  removeListener(event, listener) {
    return this.off(event, listener);
  }

  // One event from the daemon, to its listeners and the matching patterns.
  _deliver(event, packet) {
    super.emit(event, packet);
    for (const { re, listener } of this._patterns.slice()) {
      const match = re.exec(event);
      if (match) listener(...match.slice(1), packet);
    }
  }

  // Ends the subscription, and its reconnecting; the bus emits 'close'
  // once it has ended.
  close() {
    if (this._closing) return;
    this._closing = true;
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._child) this._child.stdin.end();
    else process.nextTick(() => this._closed());
  }

  _closed() {
    this.emit('close');
    if (this._socket) this._socket.emit('close');
  }
}

// Like PM2's (an axon socket), a bus whose daemon went away (stopped, or
// replaced by `rsup update`) connects again, forever, waiting 100 ms
// longer by half each time up to 5 s; it never starts a daemon. Events
// published while it was away are missed.
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

// Subscribes; `cb(err, bus, socket)` once the daemon has the subscription,
// so no event after the callback is missed. `socket`, as PM2's third
// argument, emits 'reconnect attempt' before each try, 'connect' when one
// succeeds, and 'close' once the bus is closed.
function launchBus(options, cb) {
  const bus = new Bus();
  const socket = new EventEmitter();
  bus._socket = socket;
  let first = true;
  let retryMs = RETRY_FIRST_MS;

  const deliver = (line) => {
    switch (line.type) {
      case 'process':
        bus._deliver('process:event', processEvent(line));
        break;
      case 'log':
        bus._deliver(line.stream === 'err' ? 'log:err' : 'log:out', logEvent(line));
        break;
      case 'message': {
        const [event, packet] = messageEvent(line);
        bus._deliver(event, packet);
        break;
      }
      case 'dropped':
        // Not PM2's: this subscriber fell behind and missed events.
        bus._deliver('rsup:dropped', { count: line.count });
        break;
      default:
        break;
    }
  };

  const retry = () => {
    bus._timer = setTimeout(() => {
      bus._timer = null;
      socket.emit('reconnect attempt');
      subscribe();
    }, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, Math.round(retryMs * 1.5));
  };

  function subscribe() {
    // 'waiting' for the daemon's word, then 'subscribed', or 'failed'.
    let state = 'waiting';
    const call = first
      ? { call: 'send', request: { cmd: 'subscribe', logs: true } }
      : { call: 'resubscribe', logs: true };
    bus._child = relay.run(
      call,
      { ...options, keepStdin: true },
      (line) => {
        if (state === 'failed') return;
        if (state === 'subscribed') return deliver(line);
        if (line.reply === 'subscribed') {
          state = 'subscribed';
          retryMs = RETRY_FIRST_MS;
          socket.emit('connect');
          if (first) {
            first = false;
            cb(null, bus, socket);
          }
          return;
        }
        state = 'failed';
        if (first) {
          bus._closing = true;
          cb(new Error(line.message || `rsup: unexpected answer ${JSON.stringify(line)}`));
        }
        if (bus._child) bus._child.stdin.end();
      },
      (err) => {
        bus._child = null;
        if (first && state !== 'subscribed') {
          if (state === 'waiting') cb(err || new Error('rsup: the subscription ended before it began'));
          return;
        }
        if (bus._closing) {
          bus._closed();
          return;
        }
        retry();
      },
    );
  }

  subscribe();
  return bus;
}

module.exports = { launchBus, Bus };
