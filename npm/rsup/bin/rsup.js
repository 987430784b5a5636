#!/usr/bin/env node
'use strict';

// `rsup` on the PATH of an app that installed this package: runs the native
// supervisor (RSUP_BIN, one built from source into native/, or the one of
// the per-platform package rsup-<platform>).

const { spawnSync } = require('node:child_process');
const { findBinary, binaryEnv, MISSING } = require('../lib/binary');

const binary = findBinary();
if (!binary) {
  console.error(`rsup: ${MISSING}`);
  process.exit(1);
}

const run = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit', env: binaryEnv(binary) });
if (run.error) {
  console.error(`rsup: cannot run ${binary}: ${run.error.message}`);
  process.exit(1);
}
if (run.signal) process.kill(process.pid, run.signal);
process.exit(run.status ?? 1);
