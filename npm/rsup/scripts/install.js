#!/usr/bin/env node
'use strict';

// npm's install step: nothing to do when a prebuilt addon for this platform
// loads (a published per-platform package, or one built earlier); otherwise
// build it, and the rsup command, from the workspace with cargo.

const { loadBinding } = require('../lib/binding');
const { main, BuildError } = require('./build');

if (process.env.RSUP_SKIP_BUILD) process.exit(0);

const { binding, from } = loadBinding();
if (binding) {
  console.log(`rsup: using prebuilt addon ${from}`);
  process.exit(0);
}

try {
  main(['--with-cli']);
} catch (err) {
  console.error(`rsup: ${err instanceof BuildError ? err.message : err.stack}`);
  process.exit(1);
}
