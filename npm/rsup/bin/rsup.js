#!/usr/bin/env node
'use strict';

// `rsup` on the PATH of an app that installed this package: runs the native
// supervisor built with the addon (or RSUP_BIN, or a per-platform package).

const { spawnSync } = require('node:child_process');
const { findBinary, binaryEnv, MISSING } = require('../lib/binary');

const binary = findBinary();
if (!binary) {
  console.error(`rsup: ${MISSING}`);
  process.exit(1);
}

const run = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit', env: binaryEnv() });
if (run.error) {
  console.error(`rsup: cannot run ${binary}: ${run.error.message}`);
  process.exit(1);
}
if (run.signal) process.kill(process.pid, run.signal);
process.exit(run.status ?? 1);
