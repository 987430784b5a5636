'use strict';

// The native `rsup` binary: RSUP_BIN, the one built into this package
// (native/rsup), or the one of the per-platform package.

const fs = require('node:fs');
const path = require('node:path');
const { platformKey } = require('./platform');

const PACKAGE_ROOT = path.join(__dirname, '..');

// The binary's path, or null when none is installed.
function findBinary() {
  if (process.env.RSUP_BIN) return process.env.RSUP_BIN;
  const local = path.join(PACKAGE_ROOT, 'native', 'rsup');
  if (fs.existsSync(local)) return local;
  try {
    return require.resolve(`rsup-${platformKey()}/rsup`);
  } catch {
    return null;
  }
}

const MISSING =
  'the rsup binary is not installed for this platform; ' +
  'build it with `npm run build` in the rsup package (needs cargo) or set RSUP_BIN.';

// The environment to run the binary with. A binary from a per-platform
// package does not sit next to this package's preload, so the daemon it
// may start is told where it is.
function binaryEnv(env = process.env) {
  const out = { ...env };
  if (!out.RSUP_PRELOAD) out.RSUP_PRELOAD = path.join(PACKAGE_ROOT, 'preload.js');
  return out;
}

module.exports = { findBinary, binaryEnv, MISSING };
