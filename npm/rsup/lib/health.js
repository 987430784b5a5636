'use strict';

const { isShuttingDown } = require('./shutdown');

// A request handler for health checks: 200 normally, 503 while draining so
// a load balancer stops sending traffic here. Works as an express route
// handler and with plain http.
function readiness(opts = {}) {
  const okBody = opts.ok ?? 'ok';
  const drainingBody = opts.draining ?? 'shutting down';
  return function readinessHandler(req, res) {
    const draining = isShuttingDown();
    const body = draining ? drainingBody : okBody;
    res.statusCode = draining ? 503 : 200;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    if (draining) res.setHeader('Connection', 'close');
    res.end(body);
  };
}

module.exports = { readiness };
