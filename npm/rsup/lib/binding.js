'use strict';

// Finds the native addon: RSUP_NATIVE_BINDING, else what binding.js (the
// loader @napi-rs/cli generates) loads: rsup.<platform>.node built from
// source beside this package, or the per-platform package rsup-<platform>
// that npm installed as an optional dependency.
const path = require('node:path');
const { platformKey } = require('./platform');

const PACKAGE_ROOT = path.join(__dirname, '..');

// The .node file a successful require loaded, for messages.
function loadedFrom(before) {
  const added = Object.keys(require.cache).filter((f) => f.endsWith('.node') && !before.has(f));
  return added[0] || path.join(PACKAGE_ROOT, 'binding.js');
}

// The load error and the errors behind it (the loader chains one per place
// it tried through `cause`).
function describe(err) {
  const lines = [];
  for (let e = err; e && lines.length < 10; e = e.cause) lines.push(String(e.message).split('\n')[0]);
  return lines;
}

let cached;

// Returns { binding, from } or { errors }; never throws.
function loadBinding() {
  if (cached) return cached;
  const override = process.env.RSUP_NATIVE_BINDING;
  const before = new Set(Object.keys(require.cache));
  try {
    const binding = require(override || path.join(PACKAGE_ROOT, 'binding.js'));
    cached = { binding, from: override || loadedFrom(before) };
  } catch (err) {
    cached = { errors: describe(err).map((line) => (override ? `${override}: ${line}` : line)) };
  }
  return cached;
}

const NO_ADDON =
  `no rsup addon for ${platformKey()} is installed. npm installs it as the optional ` +
  `dependency rsup-${platformKey()}: reinstall without --omit=optional (or --no-optional). ` +
  'Platforms without that package build it from a checkout of the rsup repository: ' +
  '`node npm/rsup/scripts/build.js --with-cli` (needs cargo), then install that npm/rsup folder.';

function requireBinding() {
  const { binding, errors } = loadBinding();
  if (binding) return binding;
  throw new Error(`rsup: ${NO_ADDON}\n  ${errors.join('\n  ')}`);
}

module.exports = { loadBinding, requireBinding, PACKAGE_ROOT, NO_ADDON };
