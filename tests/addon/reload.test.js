'use strict';

// The CLI end to end on the Node release running this suite (the daemon
// starts apps with the `node` first on PATH, which scripts/node-matrix.sh
// points at each release it tests): start two instances, reload them under
// steady keep-alive load without one failed request, stop them.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { FIXTURES, request } = require('./helpers');
const { skip, privateDaemon } = require('./daemon');
const { keepAliveLoad, until, freePort } = require('./load');

const daemon = privateDaemon();
test.after(daemon.cleanup);

test('start, reload under load with no failed request, stop', { skip }, async () => {
  const port = await freePort();
  const start = await daemon.rsup(
    ['start', path.join(FIXTURES, 'pid-app.js'), '--name', 'web', '-i', '2', '--wait-ready'],
    30_000,
    { PORT: String(port) },
  );
  assert.equal(start.code, 0, `${start.stdout}\n${start.stderr}`);
  const first = JSON.parse((await request(port, '/')).body);
  assert.equal(first.node, process.version, 'the app runs on the Node release under test');
  assert.ok(first.execArgv.some((a) => a.endsWith('preload.js')), JSON.stringify(first.execArgv));
  const before = new Set((await daemon.list()).map((p) => p.pid));
  assert.equal(before.size, 2);

  const load = keepAliveLoad(port);
  let after;
  try {
    await until('answers before the reload', () => load.stats.ok >= 20);
    const reload = await daemon.rsup(['reload', 'web'], 60_000);
    assert.equal(reload.code, 0, `${reload.stdout}\n${reload.stderr}`);
    after = new Set((await daemon.list()).map((p) => p.pid));
    assert.equal(after.size, 2);
    for (const pid of after) assert.ok(!before.has(pid), 'every instance was replaced');
    // The pool's few connections may all land on one new instance.
    const answered = new Set();
    let read = 0;
    const answeredBy = () => {
      for (; read < load.stats.answers.length; read++) answered.add(JSON.parse(load.stats.answers[read]).pid);
      return answered;
    };
    await until('the load to be answered by a new instance', () => [...after].some((pid) => answeredBy().has(pid)));
  } finally {
    // Never left running: with the app gone it would spin on refusals.
    await load.stop();
  }
  const { stats } = load;
  assert.deepEqual(stats.failed, [], `${stats.failed.length} failed of ${stats.ok + stats.failed.length}`);
  // New connections reach both new instances.
  const fresh = new Set();
  for (let i = 0; i < 200 && ![...after].every((pid) => fresh.has(pid)); i++) {
    fresh.add(JSON.parse((await request(port, '/', { agent: false })).body).pid);
  }
  for (const pid of after) assert.ok(fresh.has(pid), `no new connection reached ${pid}`);

  const stop = await daemon.rsup(['stop', 'web'], 30_000);
  assert.equal(stop.code, 0, `${stop.stdout}\n${stop.stderr}`);
  const stopped = await daemon.list();
  assert.deepEqual(stopped.map((p) => p.status), ['stopped', 'stopped']);
});
