'use strict';

// Which server.listen() forms the preload takes over, and the address it
// asks rsup for; the rest is left to Node untouched.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { listenTarget } = require('../../npm/rsup/lib/listen-target');

const cb = () => {};

test('port forms map to a TCP address, the callback and backlog kept', () => {
  const cases = [
    [[], { port: 0 }],
    [[cb], { port: 0 }],
    [[null], { port: 0 }],
    [[0], { port: 0 }],
    [[3000], { port: 3000 }],
    [['3000'], { port: 3000 }],
    [[3000, '127.0.0.1'], { port: 3000, host: '127.0.0.1' }],
    [[{ port: 3000, host: '::1' }], { port: 3000, host: '::1' }],
    [[{ port: undefined }], { port: 0 }],
  ];
  for (const [args, target] of cases) {
    assert.deepEqual(listenTarget(args).target, target, JSON.stringify(args));
  }
  assert.equal(listenTarget([3000, cb]).cb, cb);
  assert.equal(listenTarget([3000, '0.0.0.0', 64, cb]).backlog, 64);
  assert.equal(listenTarget([{ port: 1, backlog: 8 }, cb]).backlog, 8);
});

test('paths map to a Unix address resolved against the app\'s directory', () => {
  assert.deepEqual(listenTarget(['/tmp/app.sock']).target, { path: '/tmp/app.sock' });
  const relative = listenTarget([{ path: 'app.sock' }, cb]);
  assert.deepEqual(relative.target, { path: path.resolve('app.sock') });
  assert.equal(relative.pipeName, 'app.sock');
  assert.equal(relative.cb, cb);
});

test('descriptors, handles, servers, special options and invalid ports are left to Node', () => {
  const server = { listen() {} };
  for (const args of [
    [{ fd: 3 }],
    [{ handle: {} }],
    [{ _handle: {} }],
    [server],
    [{ port: 3000, exclusive: true }],
    [{ port: 3000, reusePort: true }],
    [{ port: 3000, ipv6Only: true }],
    [{ path: '/tmp/a.sock', readableAll: true }],
    [{ path: '\0abstract' }],
    [{}],
    [70000],
    [-1],
    [1.5],
    [{ port: ' ' }],
  ]) {
    assert.equal(listenTarget(args), null, JSON.stringify(args));
  }
});
