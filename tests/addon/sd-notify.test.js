'use strict';

// systemd's side is played by a real Unix datagram socket, bound with the
// addon's test-only receiver (Node cannot bind one).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { start, sleep, ADDON } = require('./helpers');
const { requireBinding } = require(path.join(ADDON, 'lib', 'binding'));

const { __TestDatagramReceiver: Receiver } = requireBinding();

async function nextDatagram(receiver, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const message = receiver.recv(0);
    if (message !== null) return message;
    await sleep(20);
  }
  return null;
}

async function readyThenStopping(t, socketName) {
  const receiver = new Receiver(socketName);
  const app = start('server.js', { env: { NOTIFY_SOCKET: socketName } });
  t.after(() => app.child.kill('SIGKILL'));
  await app.waitFor(/^listening \d+$/);
  assert.equal(await nextDatagram(receiver), 'READY=1');
  app.child.kill('SIGTERM');
  assert.equal(await nextDatagram(receiver), 'STOPPING=1');
  assert.equal((await app.exited).code, 0);
  assert.equal(receiver.recv(0), null, 'nothing else was sent');
}

test('READY=1 and STOPPING=1 reach the socket named by NOTIFY_SOCKET (path)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-notify-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  await readyThenStopping(t, path.join(dir, 'notify.sock'));
});

test('READY=1 reaches an abstract socket (@name)', { skip: process.platform !== 'linux' }, async (t) => {
  await readyThenStopping(t, `@rsup-test-${process.pid}-${Date.now()}`);
});
