'use strict';

// PM2's programmatic API (`const pm2 = require('pm2')`) over rsup: the
// calls, arguments and callbacks of PM2's lib/API.js, answered by the rsup
// daemon. Each call is one run of `rsup node-api` (see ./relay.js), so
// apps are read from options and ecosystem files by the same code as
// `rsup start`, and targets are resolved by the daemon as for every verb.

const path = require('node:path');
const relay = require('./relay');
const { launchBus } = require('./bus');
const { monitorData, operated } = require('./shape');

// PM2 calls back with `(err, result)`; without a callback it prints what
// went wrong instead of leaving it unseen.
function settle(cb, err, result) {
  if (typeof cb === 'function') return cb(err, result);
  if (err) console.error(`rsup: ${err.message}`);
  return undefined;
}

// A target as PM2 takes it: numbers are ids.
function target(value) {
  return typeof value === 'number' ? String(value) : value;
}

class API {
  // `opts.cwd`: where relative scripts and files are found (default: the
  // process's cwd at each call). `opts.pm2_home` (or `rsup_home`): the
  // daemon's folder, as RSUP_HOME.
  constructor(opts = {}) {
    this.cwd = opts.cwd ? path.resolve(opts.cwd) : undefined;
    this.home = opts.rsup_home || opts.pm2_home;
    this._buses = new Set();
    // Bound, so `const { list } = require('rsup/pm2')` and ES imports of
    // single methods work too.
    for (const name of Object.getOwnPropertyNames(API.prototype)) {
      if (name !== 'constructor' && !name.startsWith('_')) this[name] = this[name].bind(this);
    }
  }

  _options() {
    const env = { ...process.env };
    if (this.home) env.RSUP_HOME = this.home;
    // The binary runs in `cwd`: a relative folder is this process's.
    if (env.RSUP_HOME) env.RSUP_HOME = path.resolve(env.RSUP_HOME);
    return { cwd: this.cwd || process.cwd(), env };
  }

  _call(request, shape, cb) {
    relay.call(request, this._options(), (err, reply) => {
      if (err) return settle(cb, err);
      let result;
      try {
        result = shape(reply);
      } catch (e) {
        return settle(cb, e);
      }
      return settle(cb, null, result);
    });
  }

  _act(verb, what, options, shape, cb) {
    this._call(
      { call: 'act', verb, target: target(what), options: options || {} },
      (reply) => shape(reply.processes),
      cb,
    );
  }

  // Starts the daemon if it does not run. `noDaemonMode` is accepted for
  // PM2's signature; the daemon always runs detached, as `rsup` starts it.
  connect(noDaemonMode, cb) {
    if (typeof noDaemonMode === 'function') cb = noDaemonMode;
    this._call(
      { call: 'send', request: { cmd: 'ping' } },
      (reply) => ({ pid: reply.pid, version: reply.version }),
      cb,
    );
  }

  // Ends every bus this API opened, so the process can exit.
  disconnect(cb) {
    for (const bus of this._buses) bus.close();
    this._buses.clear();
    if (typeof cb === 'function') process.nextTick(cb, null, {});
  }

  close(cb) {
    this.disconnect(cb);
  }

  // A script (with its app options), an ecosystem file, an app object or
  // array, or the name or id of processes to start again.
  start(cmd, opts, cb) {
    if (typeof opts === 'function') {
      cb = opts;
      opts = {};
    }
    const options = { ...(opts || {}) };
    // PM2's name for the script's arguments when they come from its CLI.
    if (Array.isArray(options.scriptArgs) && options.args === undefined) {
      options.args = options.scriptArgs;
    }
    delete options.scriptArgs;
    this._act('start', cmd, options, monitorData, cb);
  }

  restart(cmd, opts, cb) {
    if (typeof opts === 'function') {
      cb = opts;
      opts = {};
    }
    this._act('restart', cmd, opts, operated, cb);
  }

  reload(cmd, opts, cb) {
    if (typeof opts === 'function') {
      cb = opts;
      opts = {};
    }
    this._act('reload', cmd, opts, operated, cb);
  }

  stop(cmd, cb) {
    this._act('stop', cmd, {}, operated, cb);
  }

  delete(cmd, jsonVia, cb) {
    if (typeof jsonVia === 'function') cb = jsonVia;
    this._act('delete', cmd, {}, operated, cb);
  }

  list(opts, cb) {
    if (typeof opts === 'function') cb = opts;
    this._call(
      { call: 'send', request: { cmd: 'list' } },
      (reply) => monitorData(reply.processes),
      cb,
    );
  }

  // PM2's rule: the processes whose id, or whose name, is `id`; none is an
  // empty list, not an error.
  describe(id, cb) {
    this.list((err, list) => {
      if (err) return settle(cb, err);
      const found = list.filter(
        (proc) =>
          (!Number.isNaN(Number(id)) && proc.pm_id === Number(id)) ||
          (typeof id === 'string' && proc.name === id),
      );
      return settle(cb, null, found);
    });
  }

  // The ids of the processes of the app `name`.
  getProcessIdByName(name, cb) {
    this.list((err, list) => {
      if (err) return settle(cb, err);
      return settle(
        cb,
        null,
        list.filter((proc) => proc.name === name).map((proc) => proc.pm_id),
      );
    });
  }

  // `count` as `rsup scale` reads it: N, '+N' or '-N'.
  scale(name, count, cb) {
    this._call(
      { call: 'scale', name: String(name), count: String(count) },
      (reply) => operated(reply.processes),
      cb,
    );
  }

  // The running apps written for `resurrect`; with nothing running, an
  // error unless `force`.
  dump(force, cb) {
    if (typeof force === 'function') {
      cb = force;
      force = false;
    }
    this._call({ call: 'dump', force: force === true }, () => ({ success: true }), cb);
  }

  // Starts the dumped apps that do not run; calls back with their processes.
  resurrect(cb) {
    this._call({ call: 'resurrect' }, (reply) => monitorData(reply.processes), cb);
  }

  clearDump(cb) {
    this._call({ call: 'clear_dump' }, () => undefined, cb);
  }

  // Starts the daemon if it does not run, as `connect` does.
  ping(cb) {
    this._call({ call: 'send', request: { cmd: 'ping' } }, () => ({ msg: 'pong' }), cb);
  }

  // The daemon's version.
  getVersion(cb) {
    this._call({ call: 'send', request: { cmd: 'ping' } }, (reply) => reply.version, cb);
  }

  // Stops every app, then the daemon; calls back once it is gone, with
  // this API's buses closed, as PM2 closes its client.
  killDaemon(cb) {
    this._call(
      { call: 'send', request: { cmd: 'kill' } },
      () => {
        for (const bus of this._buses) bus.close();
        this._buses.clear();
        return {};
      },
      cb,
    );
  }

  kill(cb) {
    this.killDaemon(cb);
  }

  // `cb(err, bus, socket)`: an EventEmitter of 'process:event', 'log:out',
  // 'log:err' and what apps send, open until `disconnect()`, `killDaemon()`
  // or `bus.close()`, through daemon restarts (see ./bus.js).
  launchBus(cb) {
    const bus = launchBus(this._options(), (err, _bus, socket) => {
      if (err) {
        this._buses.delete(bus);
        return settle(cb, err);
      }
      if (typeof cb === 'function') return cb(null, bus, socket);
      return undefined;
    });
    this._buses.add(bus);
    bus.once('close', () => this._buses.delete(bus));
  }
}

module.exports = { API };
