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

  // Ends the subscription; the bus emits 'close' once it has ended.
  close() {
    if (this._child) this._child.stdin.end();
  }
}

// Subscribes; `cb(err, bus)` once the daemon has the subscription, so no
// event after the callback is missed.
function launchBus(options, cb) {
  const bus = new Bus();
  // 'waiting' for the daemon's word, then 'subscribed', or 'failed'.
  let state = 'waiting';
  bus._child = relay.run(
    { call: 'send', request: { cmd: 'subscribe', logs: true } },
    { ...options, keepStdin: true },
    (line) => {
      if (state === 'failed') return;
      if (state === 'waiting') {
        if (line.reply === 'subscribed') {
          state = 'subscribed';
          cb(null, bus);
        } else {
          state = 'failed';
          bus.close();
          cb(new Error(line.message || `rsup: unexpected answer ${JSON.stringify(line)}`));
        }
        return;
      }
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
    },
    (err) => {
      bus._child = null;
      if (state === 'waiting') {
        state = 'failed';
        cb(err || new Error('rsup: the subscription ended before it began'));
      }
      if (state === 'subscribed') bus.emit('close');
    },
  );
  return bus;
}

module.exports = { launchBus, Bus };
