'use strict';

// The package under the real rsup daemon: ready() flips the instance to
// online (start --wait-ready returns long before listen_timeout) and a stop
// runs the app's shutdown. Needs the rsup binary: RSUP_BIN, or one built by
// cargo or by `node npm/rsup/scripts/build.js --with-cli`.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { FIXTURES } = require('./helpers');
const { skip, privateDaemon } = require('./daemon');

// One daemon for the file, in a private RSUP_HOME; whatever happens, it and
// the app are gone afterwards.
const daemon = privateDaemon();
test.after(daemon.cleanup);

async function processInfo(name) {
  return (await daemon.list()).find((p) => p.name === name);
}

test('ready() reaches rsup: start --wait-ready returns and the instance is online', { skip }, async () => {
  // listen_timeout is long: returning well before it means `ready` arrived.
  const start = await daemon.rsup([
    'start',
    path.join(FIXTURES, 'server.js'),
    '--name',
    'addon-ready',
    '--wait-ready',
    '--listen-timeout',
    '60000',
  ]);
  assert.equal(start.code, 0, `${start.stdout}\n${start.stderr}`);
  assert.ok(start.ms < 20_000, `start took ${start.ms} ms`);
  const info = await processInfo('addon-ready');
  assert.equal(info.status, 'online');
});

test('rsup stop runs the app\'s shutdown and sees exit code 0', { skip }, async () => {
  const stop = await daemon.rsup(['stop', 'addon-ready'], 15_000);
  assert.equal(stop.code, 0, `rsup stop: ${stop.stdout}\n${stop.stderr}`);
  const stopped = await processInfo('addon-ready');
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.last_exit && stopped.last_exit.code, 0, JSON.stringify(stopped.last_exit));
  assert.match(fs.readFileSync(stopped.out_log, 'utf8'), /cleanup/);
  assert.match(
    fs.readFileSync(stopped.err_log, 'utf8'),
    /shutting down \((rsup shutdown message|SIGINT)\), \d+ ms/,
  );
});
