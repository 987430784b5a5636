'use strict';

// Finds the native addon: an explicit path, the file built from source next
// to this package, or the published per-platform package.
const path = require('node:path');
const { platformKey } = require('./platform');

const PACKAGE_ROOT = path.join(__dirname, '..');

function candidates() {
  const key = platformKey();
  const list = [];
  if (process.env.RSUP_NATIVE_BINDING) list.push(process.env.RSUP_NATIVE_BINDING);
  list.push(path.join(PACKAGE_ROOT, `rsup.${key}.node`));
  list.push(`rsup-${key}`);
  return list;
}

let cached;

// Returns { binding } or { errors }; never throws.
function loadBinding() {
  if (cached) return cached;
  const errors = [];
  for (const target of candidates()) {
    try {
      cached = { binding: require(target), from: target };
      return cached;
    } catch (err) {
      errors.push(`${target}: ${err.message.split('\n')[0]}`);
    }
  }
  cached = { errors };
  return cached;
}

function requireBinding() {
  const { binding, errors } = loadBinding();
  if (binding) return binding;
  throw new Error(
    `rsup: no native addon for ${platformKey()} could be loaded:\n  ${errors.join('\n  ')}\n` +
      'Build it from source with `node scripts/build.js` in the rsup package (needs cargo).',
  );
}

module.exports = { loadBinding, requireBinding, PACKAGE_ROOT };
