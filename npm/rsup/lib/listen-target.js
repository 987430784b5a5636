'use strict';

// Maps server.listen() arguments, as Node reads them (lib/net.js
// normalizeArgs and Server.prototype.listen), to the address to ask rsup
// for. null: a form rsup does not take over (a descriptor or handle, an
// exclusive or reusePort listen, an invalid port...), left to Node as is.

const path = require('node:path');

// Node's own test for "this string is a path, not a port".
function isPipeName(s) {
  return typeof s === 'string' && !(Number(s) >= 0);
}

function validPort(port) {
  if (typeof port === 'string' && port.trim() === '') return false;
  if (typeof port !== 'number' && typeof port !== 'string') return false;
  return +port === +port >>> 0 && +port <= 0xffff;
}

function toNumber(x) {
  const n = Number(x);
  return n >= 0 ? n : false;
}

// Returns { target, cb, backlog, signal, pipeName } or null.
function listenTarget(args) {
  const last = args[args.length - 1];
  const cb = typeof last === 'function' ? last : null;
  const arg0 = args[0];
  let options;
  if (args.length === 0 || typeof arg0 === 'function') {
    options = { port: 0 };
  } else if (typeof arg0 === 'object' && arg0 !== null) {
    options = arg0;
  } else if (isPipeName(arg0)) {
    options = { path: arg0 };
  } else {
    options = { port: arg0 ?? 0 };
    if (args.length > 1 && typeof args[1] === 'string') options.host = args[1];
  }

  if (options._handle || options.handle || typeof options.fd === 'number') return null;
  if (typeof options.listen === 'function') return null; // listen(server)
  if (options.exclusive || options.reusePort || options.ipv6Only) return null;

  const backlog =
    options.backlog || toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]) || undefined;
  const common = { cb, backlog, signal: options.signal };

  let port = options.port;
  if ('port' in options && port == null) port = 0;
  if (port !== undefined) {
    if (!validPort(port)) return null; // Node throws ERR_SOCKET_BAD_PORT
    const target = { port: Number(port) };
    if (options.host) target.host = String(options.host);
    return { target, ...common };
  }
  const pipe = options.path;
  // Abstract sockets and modes Node sets after binding stay with Node.
  if (!isPipeName(pipe) || pipe.startsWith('\0') || options.readableAll || options.writableAll) return null;
  // The supervisor binds in its own directory, not the app's.
  return { target: { path: path.resolve(pipe) }, pipeName: pipe, ...common };
}

module.exports = { listenTarget };
