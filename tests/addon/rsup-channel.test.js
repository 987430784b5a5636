'use strict';

// rsup's worker channel, with the test playing rsup: fd 3 of the app is a
// Unix stream socket (what Node's 'pipe' stdio is), named by RSUP_FD.

const test = require('node:test');
const assert = require('node:assert/strict');
const readline = require('node:readline');
const { start, sleep } = require('./helpers');

function startWorker(t, scenario, env = {}) {
  const app = start('handlers.js', {
    args: [scenario],
    env: { RSUP_FD: '3', RSUP_KILL_TIMEOUT_MS: '4000', RSUP_KILL_SIGNAL: 'SIGUSR2', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  t.after(() => app.child.kill('SIGKILL'));
  const channel = app.child.stdio[3];
  const received = [];
  readline.createInterface({ input: channel }).on('line', (line) => received.push(line));
  return { app, channel, received };
}

test('ready() reaches the channel once; the fd and variable do not leak to children', async (t) => {
  const { app, channel, received } = startWorker(t, 'rsup');
  await app.waitFor(/^armed rsup$/);
  assert.ok(app.stdout().includes('child RSUP_FD=undefined channel=closed'), app.stdout().join('\n'));
  await sleep(100);
  assert.deepEqual(received, ['{"type":"ready"}']);

  channel.write('{"type":"shutdown","deadline_ms":3000,"reason":"reload"}\n');
  const { code } = await app.exited;
  assert.equal(code, 0);
  assert.ok(app.stdout().includes('cleanup ran'));
  // onShutdown handlers learn why from the message.
  assert.ok(app.stdout().includes('reason reload'), app.stdout().join('\n'));
  // 3000 ms less the 250 ms margin, give or take the time to get here.
  const ms = Number(app.stderr().match(/shutting down \(rsup shutdown message\), (\d+) ms to finish \(reload\)/)[1]);
  assert.ok(ms > 2500 && ms <= 2750, app.stderr());
});

test('unknown messages are ignored; the kill signal from RSUP_KILL_SIGNAL stops the app', async (t) => {
  const { app, channel } = startWorker(t, 'order');
  await app.waitFor(/^armed rsup$/);
  channel.write('{"type":"something_newer"}\nnot json\n');
  await sleep(200);
  assert.equal(app.child.exitCode, null);
  app.child.kill('SIGUSR2'); // fatal by default: only a handler keeps it graceful
  const { code, signal } = await app.exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.equal(app.stdout().filter((l) => l.startsWith('handler')).length, 3);
  // A signal alone does not say why.
  assert.ok(app.stdout().includes('reason unknown'), app.stdout().join('\n'));
  // RSUP_KILL_TIMEOUT_MS less its 250 ms margin.
  const ms = Number(app.stderr().match(/shutting down \(SIGUSR2\), (\d+) ms/)[1]);
  assert.ok(ms > 3500 && ms <= 3750, app.stderr());
});

test('the channel reader does not keep the process alive', async (t) => {
  const { app, received } = startWorker(t, 'ipc-alive');
  const { code } = await Promise.race([
    app.exited,
    sleep(5000).then(() => ({ code: 'still running after 5 s' })),
  ]);
  assert.equal(code, 0);
  assert.deepEqual(received, ['{"type":"ready"}']);
});

test('a stale RSUP_FD that names no socket is ignored', async (t) => {
  const app = start('handlers.js', { args: ['order'], env: { RSUP_FD: '9' } });
  t.after(() => app.child.kill('SIGKILL'));
  await app.waitFor(/^armed none$/);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});
