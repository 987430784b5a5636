#!/usr/bin/env node
'use strict';

// `rsup` on the PATH of an app that installed this package: runs the native
// supervisor built with the addon (or RSUP_BIN, or a per-platform package).

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { platformKey } = require('../lib/platform');

function findBinary() {
  if (process.env.RSUP_BIN) return process.env.RSUP_BIN;
  const local = path.join(__dirname, '..', 'native', 'rsup');
  if (fs.existsSync(local)) return local;
  try {
    return require.resolve(`rsup-${platformKey()}/rsup`);
  } catch {
    return null;
  }
}

const binary = findBinary();
if (!binary) {
  console.error(
    'rsup: the rsup binary is not installed for this platform; ' +
      'build it with `npm run build` in the rsup package (needs cargo) or set RSUP_BIN.',
  );
  process.exit(1);
}

// A binary from a per-platform package does not sit next to this
// package's preload, so the daemon it starts is told where it is.
const env = { ...process.env };
if (!env.RSUP_PRELOAD) env.RSUP_PRELOAD = path.join(__dirname, '..', 'preload.js');
const run = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit', env });
if (run.error) {
  console.error(`rsup: cannot run ${binary}: ${run.error.message}`);
  process.exit(1);
}
if (run.signal) process.kill(process.pid, run.signal);
process.exit(run.status ?? 1);
