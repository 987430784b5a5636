'use strict';

// How `rsup/pm2` reads the answers of `rsup node-api`, with a stand-in for
// the binary writing the lines the daemon would: the bus's events and
// patterns, a bus that fell behind, refusals and a binary that says
// nothing. The real daemon's side is in pm2-api.test.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { FIXTURES, ADDON } = require('./helpers');

const pm2 = require(path.join(ADDON, 'pm2.js'));

function fake(lines, exit = 0) {
  process.env.RSUP_BIN = path.join(FIXTURES, 'fake-node-api.js');
  process.env.FAKE_ANSWER = JSON.stringify(lines);
  process.env.FAKE_EXIT = String(exit);
}

test('the bus turns lines into PM2 packets, patterns included, and says when it fell behind', async () => {
  fake([
    { reply: 'subscribed' },
    { type: 'log', stream: 'out', id: 4, name: 'api', namespace: 'default', at_ms: 7, data: 'hi\n' },
    { type: 'dropped', count: 3 },
  ]);
  // Listeners go on in the callback, as with PM2: events may follow at once.
  const all = [];
  let out;
  let dropped;
  const bus = await new Promise((resolve, reject) =>
    pm2.launchBus((err, b) => {
      if (err) return reject(err);
      b.on('*', (event, packet) => all.push([event, packet]));
      out = new Promise((done) => b.on('log:*', (stream, packet) => done([stream, packet])));
      dropped = new Promise((done) => b.on('rsup:dropped', done));
      return resolve(b);
    }),
  );
  assert.deepEqual(await out, [
    'out',
    { process: { pm_id: 4, name: 'api', rev: null, namespace: 'default' }, at: 7, data: 'hi\n' },
  ]);
  assert.deepEqual(await dropped, { count: 3 });
  assert.deepEqual(
    all.map(([event]) => event),
    ['log:out', 'rsup:dropped'],
  );
  const closed = new Promise((resolve) => bus.once('close', resolve));
  pm2.disconnect();
  await closed;
});

test('a refused subscription is the callback\'s error', async () => {
  fake([{ reply: 'error', message: 'permission denied: uid 0' }]);
  const err = await new Promise((resolve) => pm2.launchBus((e) => resolve(e)));
  assert.equal(err.message, 'permission denied: uid 0');
  pm2.disconnect();
});

test('a call the binary does not answer fails, saying so', async () => {
  fake([], 3);
  const err = await new Promise((resolve) => pm2.list((e) => resolve(e)));
  assert.match(err.message, /exited with code 3 without answering/);
});

test('a binary that cannot run is the callback\'s error', async () => {
  process.env.RSUP_BIN = path.join(FIXTURES, 'no-such-binary');
  const err = await new Promise((resolve) => pm2.connect((e) => resolve(e)));
  assert.match(err.message, /cannot run .*no-such-binary/);
});
