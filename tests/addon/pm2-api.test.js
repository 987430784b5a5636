'use strict';

// PM2's programmatic API (`require('rsup/pm2')`) against the real rsup
// daemon: the calls, their callbacks and shapes, and the bus. Needs the
// rsup binary: RSUP_BIN, or one built by cargo or by
// `node npm/rsup/scripts/build.js --with-cli`.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');
const { spawnSync } = require('node:child_process');
const { FIXTURES, ADDON, start } = require('./helpers');
const { RSUP, skip, privateDaemon } = require('./daemon');

// The API runs the same binary as the suite's helpers.
if (RSUP) process.env.RSUP_BIN = RSUP;
const API_MODULE = path.join(ADDON, 'pm2.js');
const daemon = privateDaemon();
const pm2 = new (require(API_MODULE).custom)({ pm2_home: daemon.home, cwd: FIXTURES });
const APP = path.join(FIXTURES, 'api-app.js');
// A guard against hanging, not a measure: conditions are waited for.
const PATIENCE = 30_000;

const call = (method, ...args) => promisify(pm2[method])(...args);

// Waits until `cond()` holds; fails, saying `what()`, after PATIENCE.
async function until(cond, what) {
  const deadline = Date.now() + PATIENCE;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`waited for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test.after(async () => {
  pm2.disconnect();
  // Whatever the tests left running is seen, then stopped with the daemon.
  await daemon.list().catch(() => {});
  await daemon.cleanup();
});

// Collects a bus's events; `until(pred)` resolves with the first event
// (past or future) for which `pred` holds.
function recorder(bus) {
  const seen = [];
  const waiters = [];
  bus.on('*', (name, packet) => {
    const event = { name, packet };
    seen.push(event);
    for (const w of waiters.slice()) {
      if (w.pred(event)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    }
  });
  function until(pred, what) {
    const found = seen.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const names = seen.map((e) => `${e.name}:${e.packet.event || ''}`).join(' ');
        reject(new Error(`no ${what} on the bus; saw ${names}`));
      }, PATIENCE);
      waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }
  return { seen, until };
}

const processEvent = (event, name) => (e) =>
  e.name === 'process:event' && e.packet.event === event && e.packet.process.name === name;

test('connect starts the daemon, as the CLI does on demand', { skip }, async () => {
  assert.equal(fs.existsSync(path.join(daemon.home, 'rsup.pid')), false);
  // PM2's noDaemonMode: the daemon is started detached all the same.
  const meta = await call('connect', true);
  const pid = Number(fs.readFileSync(path.join(daemon.home, 'rsup.pid'), 'utf8'));
  assert.equal(meta.pid, pid);
  assert.equal(typeof meta.version, 'string');
  // Connecting again finds the same daemon.
  assert.equal((await call('connect')).pid, pid);
});

test('the methods work detached from the module, and through ES imports', { skip }, async () => {
  const { list, custom } = require(API_MODULE);
  assert.equal(typeof list, 'function');
  const { list: listHere } = new custom({ pm2_home: daemon.home });
  assert.ok(Array.isArray(await promisify(listHere)()));
  const esm = await import(API_MODULE.replace(/\.js$/, '.mjs'));
  for (const name of ['connect', 'start', 'restart', 'reload', 'stop', 'delete', 'list', 'describe', 'launchBus']) {
    assert.equal(typeof esm[name], 'function', name);
    assert.equal(typeof esm.default[name], 'function', name);
  }
});

test('start(script, options) starts the app with those options and calls back with its processes', { skip }, async () => {
  const procs = await call('start', 'api-app.js', { name: 'api', instances: 2, env: { GREETING: 'hi' } });
  assert.deepEqual(
    procs.map((p) => [p.name, p.pm2_env.status, p.pm2_env.exec_mode]),
    [
      ['api', 'online', 'cluster_mode'],
      ['api', 'online', 'cluster_mode'],
    ],
  );
  assert.equal(procs[0].pm2_env.pm_exec_path, APP);
  assert.equal(procs[0].pm2_env.env.GREETING, 'hi');
  const list = await call('list');
  assert.deepEqual(
    list.filter((p) => p.name === 'api').map((p) => p.pm_id),
    procs.map((p) => p.pm_id),
  );
  assert.ok(list.every((p) => typeof p.pid === 'number' && p.monit), JSON.stringify(list[0]));
});

test('start of a script whose app runs fails, naming the app, unless force adds processes', { skip }, async () => {
  await assert.rejects(call('start', 'api-app.js', { name: 'api' }), /api/);
  const added = await call('start', 'api-app.js', { name: 'api', force: true });
  assert.deepEqual(
    added.map((p) => p.name),
    ['api'],
  );
  assert.equal((await call('describe', 'api')).length, 3);
  await call('delete', added[0].pm_id);
  assert.equal((await call('describe', 'api')).length, 2);
});

test('start with bad options fails with the field named, and starts nothing', { skip }, async () => {
  await assert.rejects(call('start', 'api-app.js', { name: 'bad', instances: 'lots' }), /instances/);
  await assert.rejects(call('start', 'no-such-script.js', { name: 'missing' }), /no-such-script\.js/);
  const names = (await call('list')).map((p) => p.name);
  assert.ok(!names.includes('bad') && !names.includes('missing'), names.join());
});

test('describe finds processes by name or id, and gives [] for an unknown one', { skip }, async () => {
  const byName = await call('describe', 'api');
  assert.equal(byName.length, 2);
  const [one] = await call('describe', byName[1].pm_id);
  assert.equal(one.pm_id, byName[1].pm_id);
  assert.equal(one.pm2_env.pm_out_log_path.endsWith('.log'), true);
  assert.deepEqual(await call('describe', 'nope'), []);
});

test('restart, reload and stop call back with the processes, status and restarts on top', { skip }, async () => {
  const restarted = await call('restart', 'api');
  assert.deepEqual(
    restarted.map((p) => [p.name, p.status, p.restart_time, p.namespace]),
    [
      ['api', 'online', 1, 'default'],
      ['api', 'online', 1, 'default'],
    ],
  );
  const reloaded = await call('reload', 'api', { parallel: 2 });
  assert.deepEqual(
    reloaded.map((p) => [p.status, p.restart_time]),
    [
      ['online', 2],
      ['online', 2],
    ],
  );
  // A name that runs is started again, as `pm2 start api` does.
  const again = await call('start', 'api');
  assert.deepEqual(
    again.map((p) => p.pm2_env.restart_time),
    [3, 3],
  );
  const [first] = reloaded;
  const stopped = await call('stop', first.pm_id);
  assert.deepEqual(
    stopped.map((p) => [p.pm_id, p.status]),
    [[first.pm_id, 'stopped']],
  );
  const statuses = (await call('describe', 'api')).map((p) => p.pm2_env.status).sort();
  assert.deepEqual(statuses, ['online', 'stopped']);
});

test('updateEnv gives the processes this environment; a script\'s path names its processes', { skip }, async () => {
  const [proc] = await call('start', 'api-app.js', { name: 'greeter' });
  const out = proc.pm2_env.pm_out_log_path;
  // Each process says its greeting once it runs.
  const greetings = () =>
    fs.existsSync(out)
      ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[2] || '')
      : [];
  const greeted = (n) => until(() => greetings().length === n, () => `${n} greetings in ${out}: ${greetings()}`);
  await greeted(1);
  process.env.GREETING = 'fresh';
  try {
    await call('restart', 'greeter');
    await greeted(2);
    await call('restart', 'greeter', { updateEnv: true });
    await greeted(3);
  } finally {
    delete process.env.GREETING;
  }
  assert.deepEqual(greetings(), ['', '', 'fresh']);
  // By script: every process running it, `api` too.
  const stopped = await call('stop', 'api-app.js');
  assert.deepEqual(
    [...new Set(stopped.map((p) => p.name))].sort(),
    ['api', 'greeter'],
  );
  await call('restart', 'api');
  await call('delete', 'greeter');
});

test('a namespace names its apps', { skip }, async () => {
  await call('start', { apps: [{ name: 'ns-a', script: APP, namespace: 'team' }, { name: 'ns-b', script: APP, namespace: 'team' }] });
  const stopped = await call('stop', 'team');
  assert.deepEqual(
    stopped.map((p) => [p.name, p.namespace, p.status]).sort(),
    [
      ['ns-a', 'team', 'stopped'],
      ['ns-b', 'team', 'stopped'],
    ],
  );
  assert.equal((await call('delete', 'team')).length, 2);
});

test('scale, dump, resurrect, clearDump, ping, getVersion and getProcessIdByName', { skip }, async () => {
  assert.deepEqual(await call('ping'), { msg: 'pong' });
  assert.match(await call('getVersion'), /^\d+\.\d+\.\d+/);
  await call('start', 'api-app.js', { name: 'saved' });
  assert.equal((await call('scale', 'saved', 3)).length, 3);
  assert.equal((await call('scale', 'saved', '-1')).length, 2);
  // As many as run already: nothing to do, and no error.
  assert.equal((await call('scale', 'saved', 2)).length, 2);
  const ids = await call('getProcessIdByName', 'saved');
  assert.deepEqual(
    ids,
    (await call('describe', 'saved')).map((p) => p.pm_id),
  );
  assert.equal(ids.length, 2);

  assert.deepEqual(await call('dump'), { success: true });
  await call('delete', 'saved');
  const back = await call('resurrect');
  assert.deepEqual(
    back.map((p) => [p.name, p.pm2_env.status]),
    [
      ['saved', 'online'],
      ['saved', 'online'],
    ],
  );
  // Nothing missing: nothing started.
  assert.deepEqual(await call('resurrect'), []);
  await call('delete', 'saved');
  await call('clearDump');
  assert.deepEqual(await call('resurrect'), []);
});

test('unknown apps and ids are errors for restart, reload, stop and delete', { skip }, async () => {
  for (const verb of ['restart', 'reload', 'stop', 'delete']) {
    await assert.rejects(call(verb, 'nope'), /not found: nope/, verb);
    await assert.rejects(call(verb, 9999), /not found: 9999/, verb);
  }
});

test('delete forgets the processes', { skip }, async () => {
  const deleted = await call('delete', 'api');
  assert.equal(deleted.length, 2);
  assert.deepEqual(await call('describe', 'api'), []);
});

test('start of apps as an object starts them, and restarts them when they run', { skip }, async () => {
  const apps = { apps: [{ name: 'obj', script: APP, env: { GREETING: 'obj' } }] };
  const [started] = await call('start', apps);
  assert.equal(started.pm2_env.status, 'online');
  assert.equal(started.pm2_env.restart_time, 0);
  const [again] = await call('start', apps);
  assert.equal(again.pm_id, started.pm_id);
  assert.equal(again.pm2_env.restart_time, 1);
  // restart takes apps too, with their new options.
  apps.apps[0].env.GREETING = 'changed';
  const [restarted] = await call('restart', apps);
  assert.deepEqual([restarted.status, restarted.restart_time], ['online', 2]);
  const [described] = await call('describe', 'obj');
  assert.equal(described.pm2_env.env.GREETING, 'changed');
  await call('delete', 'obj');
});

test('start of an ecosystem file uses its env_<name> with options.env', { skip }, async () => {
  const procs = await call('start', 'api-ecosystem.config.js', { env: 'production', only: 'eco-a' });
  assert.deepEqual(
    procs.map((p) => [p.name, p.pm2_env.env.GREETING]),
    [['eco-a', 'prod']],
  );
  const stopped = await call('stop', 'api-ecosystem.config.js');
  assert.deepEqual(
    stopped.map((p) => [p.name, p.status]),
    [['eco-a', 'stopped']],
    'only the file\'s apps that run',
  );
  // reload of the file starts what does not run and reloads the rest.
  const reloaded = await call('reload', 'api-ecosystem.config.js');
  assert.deepEqual(
    reloaded.map((p) => [p.name, p.status]).sort(),
    [
      ['eco-a', 'online'],
      ['eco-b', 'online'],
    ],
  );
  await call('stop', '/^eco-/');
  const deleted = await call('delete', 'api-ecosystem.config.js');
  assert.deepEqual(deleted.map((p) => p.name).sort(), ['eco-a', 'eco-b']);
  // Apps of the file that do not run are passed over, as in PM2.
  assert.deepEqual(await call('delete', 'api-ecosystem.config.js'), []);
});

test('the bus carries process events and output: start, online, crash, restart', { skip }, async () => {
  const bus = await call('launchBus');
  const events = recorder(bus);
  const logs = [];
  bus.on('log:*', (stream, packet) => logs.push([stream, packet]));

  await call('start', 'api-app.js', {
    name: 'crasher',
    env: { CRASH_AFTER_MS: '300', ERR_LINE: 'to stderr' },
    restart_delay: 200,
    max_restarts: 2,
  });
  const started = await events.until(processEvent('start', 'crasher'), 'start of crasher');
  assert.equal(started.packet.manually, true);
  const online = await events.until(processEvent('online', 'crasher'), 'online of crasher');
  assert.equal(online.packet.process.status, 'online');
  assert.equal(online.packet.process.env, undefined, 'PM2 leaves env out of the packet');
  assert.equal(typeof online.packet.at, 'number');

  const exit = await events.until(processEvent('exit', 'crasher'), 'exit of crasher');
  assert.equal(exit.packet.manually, false);
  // Back online after the crash, on its own.
  await events.until(
    (e) => processEvent('online', 'crasher')(e) && events.seen.indexOf(e) > events.seen.indexOf(exit),
    'online after the crash',
  );

  // Too many crashes within min_uptime: it gives up.
  const overlimit = await events.until(processEvent('restart overlimit', 'crasher'), 'restart overlimit');
  assert.equal(overlimit.packet.process.status, 'errored');

  await call('stop', 'crasher');
  await events.until(processEvent('stop', 'crasher'), 'stop of crasher');
  await call('restart', 'crasher');
  const restart = await events.until(processEvent('restart', 'crasher'), 'restart of crasher');
  assert.equal(restart.packet.manually, true);

  const out = await events.until(
    (e) => e.name === 'log:out' && e.packet.process.name === 'crasher' && /api-app/.test(e.packet.data),
    'output of crasher',
  );
  assert.equal(typeof out.packet.process.pm_id, 'number');
  assert.equal(out.packet.process.namespace, 'default');
  await events.until(
    (e) => e.name === 'log:err' && /to stderr/.test(e.packet.data),
    'error output of crasher',
  );
  assert.ok(logs.some(([stream]) => stream === 'err'), 'log:* gets the stream first');

  await call('delete', 'crasher');
  await events.until(processEvent('delete', 'crasher'), 'delete of crasher');

  await call('start', 'api-app.js', { name: 'steady', listen_timeout: 300 });
  await call('reload', 'steady');
  const reload = await events.until(processEvent('reload', 'steady'), 'reload of steady');
  assert.equal(reload.packet.manually, true);
  assert.equal(reload.packet.process.restart_time, 1);
  await call('delete', 'steady');

  const closed = new Promise((resolve) => bus.once('close', resolve));
  bus.close();
  await closed;
});

test("the bus relays what apps send with process.send, as PM2's does", { skip }, async () => {
  const bus = await call('launchBus');
  const events = recorder(bus);
  await call('start', 'api-app.js', { name: 'talker', env: { SEND_MESSAGES: '1' } });
  const msg = await events.until((e) => e.name === 'process:msg' && e.packet.data, 'process:msg');
  assert.deepEqual(msg.packet.data, { hello: 'bus' });
  assert.equal(msg.packet.process.name, 'talker');
  assert.equal(typeof msg.packet.process.pm_id, 'number');
  assert.equal(typeof msg.packet.at, 'number');
  // Another type is an event of that name; anything else is process:msg's `raw`.
  const custom = await events.until((e) => e.name === 'custom:event', 'custom:event');
  assert.deepEqual(custom.packet.data, { n: 1 });
  const raw = await events.until((e) => e.name === 'process:msg' && e.packet.raw, 'a raw process:msg');
  assert.deepEqual(raw.packet.raw, { plain: true });
  await call('delete', 'talker');
  const closed = new Promise((resolve) => bus.once('close', resolve));
  bus.close();
  await closed;
});

// The exit code of the fixture run by plain node, without rsup's preload.
function plainExitCode(env) {
  const run = spawnSync(process.execPath, [APP], { env: { ...process.env, ...env }, stdio: 'ignore' });
  return run.status;
}

test("an uncaught exception or unhandled rejection is process:exception, as PM2's container reports it; the app still crashes and restarts", { skip }, async () => {
  const bus = await call('launchBus');
  const events = recorder(bus);
  const cases = [
    { name: 'thrower', env: { THROW_AFTER_MS: '200', THROW_NAME: 'thrower' } },
    // Without the addon too: the report goes over Node's IPC channel.
    {
      name: 'rejecter',
      env: {
        THROW_AFTER_MS: '200',
        THROW_NAME: 'rejecter',
        REJECT: '1',
        RSUP_NATIVE_BINDING: path.join(FIXTURES, 'no-addon.node'),
      },
    },
  ];
  for (const { name, env } of cases) {
    await call('start', 'api-app.js', { name, env, restart_delay: 100 });
  }
  for (const { name, env } of cases) {
    const exception = await events.until(
      (e) => e.name === 'process:exception' && e.packet.process.name === name,
      `process:exception of ${name}`,
    );
    const { data, process: proc, at } = exception.packet;
    assert.equal(data.message, `boom from ${name}`);
    assert.match(data.stack, new RegExp(`^Error: boom from ${name}\\n    at `));
    assert.equal(data.code, 'E_BOOM', 'the error\'s own properties come along');
    assert.equal(data.name, 'Error');
    assert.equal(typeof proc.pm_id, 'number');
    assert.equal(proc.namespace, 'default');
    assert.equal(typeof at, 'number');

    if (env.RSUP_NATIVE_BINDING) {
      await events.until(
        (e) => e.name === 'log:err' && e.packet.process.name === name && /addon unavailable/.test(e.packet.data),
        `${name} saying it runs without the addon`,
      );
    }
    // It crashed as it does under plain node, and came back.
    const exit = await events.until(processEvent('exit', name), `exit of ${name}`);
    assert.equal(exit.packet.process.exit_code, plainExitCode(env));
    assert.notEqual(exit.packet.process.exit_code, 0);
    await events.until(
      (e) => processEvent('online', name)(e) && events.seen.indexOf(e) > events.seen.indexOf(exit),
      `online of ${name} after the crash`,
    );
    await call('delete', name);
  }
  const closed = new Promise((resolve) => bus.once('close', resolve));
  bus.close();
  await closed;
});

// The pid in the daemon's pid file, or null when none runs.
function daemonPid() {
  const file = path.join(daemon.home, 'rsup.pid');
  return fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8').trim()) || null : null;
}

test("a bus reconnects, as PM2's does: through rsup update, and to the next daemon after one stopped, without starting one", { skip }, async () => {
  let socket;
  const bus = await new Promise((resolve, reject) =>
    pm2.launchBus((err, b, s) => {
      if (err) return reject(err);
      socket = s;
      return resolve(b);
    }),
  );
  const events = recorder(bus);
  let connects = 0;
  let attempts = 0;
  let closed = false;
  socket.on('connect', () => connects++);
  socket.on('reconnect attempt', () => attempts++);
  bus.on('close', () => {
    closed = true;
  });
  await call('ping');

  const updated = await daemon.rsup(['update'], 60_000);
  assert.equal(updated.code, 0, updated.stderr);
  assert.match(updated.stdout, /rsup daemon updated/);
  await until(() => connects >= 1, () => 'a reconnection after the update');
  await call('start', 'api-app.js', { name: 'survivor' });
  await events.until(processEvent('online', 'survivor'), 'online of survivor after the update');
  await call('delete', 'survivor');

  // Stopped by another client: the bus keeps trying, and starts no daemon.
  const killed = await daemon.rsup(['kill'], 30_000);
  assert.equal(killed.code, 0, killed.stderr);
  const tried = attempts;
  await until(() => attempts >= tried + 3, () => `3 reconnect attempts, saw ${attempts - tried}`);
  assert.equal(daemonPid(), null, 'a reconnecting bus started a daemon');
  assert.equal(closed, false, 'the bus closed when its daemon stopped');
  const reconnected = connects;
  await call('ping');
  await until(() => connects > reconnected, () => 'a reconnection to the new daemon');
  await call('start', 'api-app.js', { name: 'survivor' });
  const online = await events.until(processEvent('online', 'survivor'), 'online of survivor after the restart');
  assert.ok(events.seen.indexOf(online) >= 0);
  await call('delete', 'survivor');

  const ended = new Promise((resolve) => socket.once('close', resolve));
  bus.close();
  await ended;
  assert.equal(closed, true);
});

test('disconnect ends the buses, so a script using the API exits by itself; an error without a callback is printed', { skip }, async () => {
  const script = start('api-disconnect.js', {
    env: { PM2_API_MODULE: API_MODULE, RSUP_HOME: daemon.home, RSUP_BIN: RSUP },
  });
  await script.waitFor(/^listed \d+$/, PATIENCE);
  let timer;
  const exited = await Promise.race([
    script.exited,
    new Promise((resolve) => {
      timer = setTimeout(resolve, PATIENCE, null);
    }),
  ]);
  clearTimeout(timer);
  if (!exited) script.child.kill('SIGKILL');
  assert.ok(exited, 'still running after disconnect');
  assert.equal(exited.code, 0, script.stderr());
  assert.match(script.stderr(), /^rsup: .*not found: no-such-app$/m);
});

test('killDaemon stops every app, then the daemon; a bus ends with it', { skip }, async () => {
  // Nothing runs here: an empty list is saved only when forced.
  await assert.rejects(call('dump'), /no app runs/);
  assert.deepEqual(await call('dump', true), { success: true });
  await call('start', 'api-app.js', { name: 'last' });
  const procs = await call('list');
  assert.ok(procs.some((p) => p.name === 'last' && p.pid), JSON.stringify(procs.map((p) => p.name)));
  const bus = await call('launchBus');
  const closed = new Promise((resolve) => bus.once('close', resolve));
  await call('killDaemon');
  await closed;
  assert.equal(fs.existsSync(path.join(daemon.home, 'rsup.pid')), false);
  for (const p of procs) {
    if (!p.pid) continue;
    assert.throws(() => process.kill(p.pid, 0), { code: 'ESRCH' }, `pid ${p.pid} outlived the daemon`);
  }
  // Nothing runs: killing again is no error.
  await call('killDaemon');
});
