'use strict';

// Loaded by rsup into its Node workers (`node -r <this file>`, or through
// NODE_OPTIONS for apps a package manager starts): makes server.listen()
// take the supervisor's listening sockets, holds their accepting back
// until ready under wait_ready, closes and drains those servers when
// rsup says shutdown, and reports an uncaught exception before the
// process dies. Does nothing in a process rsup did not start (PM2,
// systemd, plain node).

if (process.env.RSUP_FD !== undefined) {
  const { install, inNodeOptions } = require('./lib/worker-session');
  install({ lazy: inNodeOptions(__filename), preloadPath: __filename });
  require('./lib/exception-report').install();
}
