'use strict';

// The native `rsup` binary: RSUP_BIN, the one built from source into this
// package (native/rsup), or the one of the per-platform package rsup-<platform>.

const fs = require('node:fs');
const path = require('node:path');
const { platformKey } = require('./platform');

const PACKAGE_ROOT = path.join(__dirname, '..');
const PRELOAD = path.join(PACKAGE_ROOT, 'preload.js');

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
  `no rsup binary for ${platformKey()} is installed. npm installs it with the optional ` +
  `dependency rsup-${platformKey()}: reinstall without --omit=optional (or --no-optional). ` +
  'Elsewhere build it from a checkout of the rsup repository ' +
  '(`node npm/rsup/scripts/build.js --with-cli`, needs cargo) or set RSUP_BIN.';

// Where the daemon looks for the preload on its own, beside its binary:
// <package>/native/rsup -> <package>/preload.js, and
// node_modules/rsup-<platform>/rsup -> node_modules/rsup/preload.js.
function preloadBesideBinary(binary) {
  const dir = path.dirname(fs.realpathSync(binary));
  return [path.join(dir, '..', 'preload.js'), path.join(dir, '..', 'rsup', 'preload.js')].find((p) =>
    fs.existsSync(p),
  );
}

// The environment to run the binary with. When the daemon would not find
// this package's preload beside the binary (RSUP_BIN, a layout such as
// pnpm's that keeps packages apart), it is told where it is.
function binaryEnv(binary, env = process.env) {
  const out = { ...env };
  if (out.RSUP_PRELOAD) return out;
  let beside;
  try {
    beside = preloadBesideBinary(binary);
  } catch {
    beside = undefined;
  }
  if (!beside || fs.realpathSync(beside) !== fs.realpathSync(PRELOAD)) out.RSUP_PRELOAD = PRELOAD;
  return out;
}

module.exports = { findBinary, binaryEnv, MISSING };
