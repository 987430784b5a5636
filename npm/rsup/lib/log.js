'use strict';

// One prefix so operators can grep the package's lines out of an app's log.
function log(message) {
  process.stderr.write(`[rsup] ${message}\n`);
}

function describeError(err) {
  return err instanceof Error ? err.stack || err.message : String(err);
}

module.exports = { log, describeError };
