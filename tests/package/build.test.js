'use strict';

// A debug build from the checkout (what `npm test` runs) leaves the release
// binary in npm/rsup/native/ (what `npm run demo` and `npm run build` put
// there) alone: the debug binary stays in target/debug.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');
const NATIVE = path.join(ROOT, 'npm', 'rsup', 'native', 'rsup');

const identity = () => (fs.existsSync(NATIVE) ? fs.statSync(NATIVE) : null);

test('build.js --debug --with-cli builds the binary into target/debug, not npm/rsup/native', () => {
  const before = identity();
  const build = spawnSync(
    process.execPath,
    [path.join(ROOT, 'npm', 'rsup', 'scripts', 'build.js'), '--debug', '--with-cli'],
    { encoding: 'utf8' },
  );
  assert.equal(build.status, 0, build.stderr);
  assert.match(build.stdout, new RegExp(`built ${path.join(ROOT, 'target', 'debug', 'rsup')}$`, 'm'));
  const after = identity();
  assert.equal(after && `${after.ino} ${after.mtimeMs}`, before && `${before.ino} ${before.mtimeMs}`);
});
