'use strict';

// server.listen() on sockets the supervisor owns. Each call asks rsup for
// the app's socket for that address (bound once, shared by every instance)
// and hands the descriptor to Node's own listen({ fd }), so 'listening', the
// callback and server.address() are Node's. Bind errors are emitted as the
// 'error' Node would emit. With wait_ready, accepting waits for the app's
// ready (accept-gate.js).

const fs = require('node:fs');
const net = require('node:net');
const util = require('node:util');
const { listenTarget } = require('./listen-target');
const { log } = require('./log');

// connect() gives { channel, adopt, gate } on the first listen() that
// wants a supervisor's socket (claiming the worker channel then), or null
// when this process has none. adopt(server) runs before the server can
// accept its first connection; gate, when there is one, holds accepting
// back until the app is ready.
function patchListen(connect) {
  const original = net.Server.prototype.listen;
  let usable = true;

  net.Server.prototype.listen = function listen(...args) {
    // Already listening: Node throws ERR_SERVER_ALREADY_LISTEN.
    const parsed = usable && !this._handle ? listenTarget(args) : null;
    if (!parsed) return original.apply(this, args);
    const session = connect();
    if (!session || !session.channel.listen) {
      usable = false;
      return original.apply(this, args);
    }
    const { channel, adopt, gate } = session;

    let outcome;
    try {
      outcome = channel.listen(parsed.target);
    } catch (err) {
      // A supervisor that does not hand out sockets: bind as usual, and do
      // not wait for it again.
      usable = false;
      log(`listening without rsup's socket: ${err.message}`);
      return original.apply(this, args);
    }

    if (typeof outcome.fd !== 'number') {
      if (parsed.cb) this.once('listening', parsed.cb);
      const err = listenError(outcome, parsed.target);
      // The stack starts at the app's listen() call, not in this file.
      Error.captureStackTrace(err, listen);
      process.nextTick(() => this.emit('error', err));
      return this;
    }

    adopt(this);
    const options = { fd: outcome.fd };
    if (parsed.signal) options.signal = parsed.signal;
    const rest = [];
    if (parsed.backlog) rest.push(parsed.backlog);
    if (parsed.cb) rest.push(parsed.cb);
    const release = gate ? gate.hold(this) : () => {};
    try {
      original.call(this, options, ...rest);
    } catch (err) {
      fs.closeSync(outcome.fd);
      throw err;
    } finally {
      release();
    }
    // Node answers address() for Unix sockets from the name it was given.
    if (parsed.pipeName !== undefined) this._pipeName = parsed.pipeName;
    return this;
  };
}

// Shaped like Node's UVExceptionWithHostPort: `listen EADDRINUSE: address
// already in use :::3000`, errno negative, syscall, address, port.
function listenError({ code, errno, message }, target) {
  const known = errno > 0 ? util.getSystemErrorMap().get(-errno) : undefined;
  let err;
  if (known) {
    const address = target.path ?? target.host ?? '::';
    const where = target.port > 0 ? `${address}:${target.port}` : address;
    err = new Error(`listen ${known[0]}: ${known[1]} ${where}`);
    err.code = known[0];
    err.errno = -errno;
    err.address = address;
    if (target.port > 0) err.port = target.port;
  } else {
    err = new Error(message || `listen ${code}`);
    err.code = code;
    if (errno > 0) err.errno = -errno;
  }
  err.syscall = 'listen';
  return err;
}

module.exports = { patchListen, listenError };
