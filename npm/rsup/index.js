'use strict';

// Graceful start and shutdown for Node apps under rsup, PM2, systemd or
// no supervisor at all. Requiring the package claims rsup's worker channel
// when there is one; nothing else happens until the app calls a function.

const { ready, supervisor } = require('./lib/supervisor');
const { onShutdown, track, isShuttingDown } = require('./lib/shutdown');
const { graceful } = require('./lib/graceful');
const { readiness } = require('./lib/health');

module.exports = {
  ready,
  onShutdown,
  graceful,
  track,
  isShuttingDown,
  readiness,
  supervisor,
};
