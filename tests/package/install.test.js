'use strict';

// What a user of the published packages gets: `npm run pack`'s tarballs
// (here from the debug build the other tests use) installed into a fresh
// express app with no cargo on PATH, then the app under the installed
// `rsup` command: two instances on one port, reloaded under keep-alive load
// without one failed request.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { request, cleanEnv } = require('../addon/helpers');
const { keepAliveLoad, until, freePort } = require('../addon/load');
const { platformKey } = require('../../npm/rsup/lib/platform');

const ROOT = path.join(__dirname, '..', '..');
const KEY = platformKey();

const APP = `'use strict';
const express = require('express');
const { ready, graceful } = require('rsup');

const app = express();
app.get('/', (req, res) =>
  res.json({
    pid: process.pid,
    execArgv: process.execArgv,
    addons: Object.keys(require.cache).filter((f) => f.endsWith('.node')),
  }),
);
graceful(app.listen(Number(process.env.PORT), ready));
`;

// The test's environment less cargo: PATH without the folders that hold
// it, and none of rsup's own overrides.
function withoutCargo(extra) {
  const env = cleanEnv(extra);
  for (const name of ['RSUP_BIN', 'RSUP_PRELOAD', 'RSUP_NATIVE_BINDING', 'CARGO', 'RUSTUP_HOME', 'CARGO_HOME']) {
    delete env[name];
  }
  env.PATH = env.PATH.split(path.delimiter)
    .filter((dir) => dir && !fs.existsSync(path.join(dir, 'cargo')))
    .join(path.delimiter);
  // The app runs on the Node running this test.
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH}`;
  return env;
}

function run(cmd, args, opts) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => resolve({ code: -1, out: err.message }));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

test('the packed tarballs install into an express app without cargo; its rsup runs and reloads the app', async (t) => {
  const outDir = path.join(ROOT, 'target', 'npm-test');
  fs.rmSync(outDir, { recursive: true, force: true });
  const pack = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'pack.js'), '--debug', '--out-dir', outDir], {
    encoding: 'utf8',
  });
  assert.equal(pack.status, 0, pack.stderr);
  const tarballs = pack.stdout.trim().split('\n');
  const main = tarballs.find((f) => /^rsup-\d/.test(path.basename(f)));
  const platform = tarballs.find((f) => path.basename(f).startsWith(`rsup-${KEY}-`));
  assert.ok(main && platform, `npm run pack wrote ${tarballs.join(', ')}`);
  const mainFiles = spawnSync('tar', ['-tzf', main], { encoding: 'utf8' }).stdout.split('\n');
  assert.deepEqual(mainFiles.filter((f) => f.endsWith('.node') || f.includes('/native/')), []);
  assert.ok(mainFiles.includes('package/preload.js'));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-fresh-app-'));
  const home = path.join(dir, '.rsup');
  const env = withoutCargo({ RSUP_HOME: home });
  const rsup = path.join(dir, 'node_modules', '.bin', 'rsup');
  t.after(async () => {
    await run(rsup, ['kill'], { cwd: dir, env });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(spawnSync('cargo', ['--version'], { env }).error?.code, 'ENOENT', 'cargo is not on PATH');

  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true }));
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  const install = await run('npm', ['install', main, platform, 'express@^4.21.2', '--no-audit', '--no-fund'], {
    cwd: dir,
    env,
  });
  assert.equal(install.code, 0, install.out);
  const modules = path.join(dir, 'node_modules');
  // Nothing was built: the main package holds no native file.
  assert.deepEqual(
    fs.readdirSync(path.join(modules, 'rsup')).filter((f) => f.endsWith('.node') || f === 'native'),
    [],
  );

  // `npx rsup` is the installed command, which runs the per-platform
  // package's binary and lets the daemon find the preload beside it
  // (node_modules/rsup-<platform>/rsup -> node_modules/rsup/preload.js).
  const version = await run('npx', ['rsup', '--version'], { cwd: dir, env });
  assert.equal(version.code, 0, version.out);
  assert.match(version.out, /\d+\.\d+\.\d+/);
  const lookup = await run(
    process.execPath,
    [
      '-e',
      'const b = require("./node_modules/rsup/lib/binary"); const bin = b.findBinary(); ' +
        'console.log(JSON.stringify([bin, b.binaryEnv(bin).RSUP_PRELOAD || null, require.resolve("rsup/preload")]))',
    ],
    { cwd: dir, env },
  );
  assert.equal(lookup.code, 0, lookup.out);
  const [binary, preloadVar, preloadExport] = JSON.parse(lookup.out);
  assert.equal(preloadExport, path.join(fs.realpathSync(modules), 'rsup', 'preload.js'), '`node -r rsup/preload` resolves');
  assert.equal(fs.realpathSync(binary), fs.realpathSync(path.join(modules, `rsup-${KEY}`, 'rsup')));
  assert.equal(preloadVar, null, 'the daemon is left to find the preload beside its binary');

  const port = await freePort();
  const start = await run(rsup, ['start', 'app.js', '--name', 'web', '-i', '2', '--wait-ready'], {
    cwd: dir,
    env: { ...env, PORT: String(port) },
  });
  assert.equal(start.code, 0, start.out);
  const first = JSON.parse((await request(port, '/')).body);
  assert.ok(
    first.execArgv.includes(fs.realpathSync(path.join(modules, 'rsup', 'preload.js'))),
    `the app runs with the installed preload: ${JSON.stringify(first.execArgv)}`,
  );
  assert.deepEqual(
    first.addons.map((f) => path.relative(modules, f)),
    [path.join(`rsup-${KEY}`, `rsup.${KEY}.node`)],
  );

  const pids = async () => {
    const list = await run(rsup, ['jlist'], { cwd: dir, env });
    assert.equal(list.code, 0, list.out);
    return new Set(JSON.parse(list.out).map((p) => p.pid));
  };
  const before = await pids();
  const load = keepAliveLoad(port);
  let after;
  try {
    await until('answers before the reload', () => load.stats.ok >= 20);
    const reload = await run(rsup, ['reload', 'web'], { cwd: dir, env });
    assert.equal(reload.code, 0, reload.out);
    after = await pids();
    for (const pid of after) assert.ok(!before.has(pid), 'every instance was replaced');
    // The pool's few connections may all land on one new instance.
    const answeredBy = () => new Set(load.stats.answers.map((body) => JSON.parse(body).pid));
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

  const kill = await run(rsup, ['kill'], { cwd: dir, env });
  assert.equal(kill.code, 0, kill.out);
});

test('a global install puts rsup on PATH; without the per-platform package the command says what is missing', async (t) => {
  const outDir = path.join(ROOT, 'target', 'npm-test');
  const tarballs = fs.readdirSync(outDir).filter((f) => f.endsWith('.tgz')).map((f) => path.join(outDir, f));
  const main = tarballs.find((f) => /^rsup-\d/.test(path.basename(f)));
  const platform = tarballs.find((f) => path.basename(f).startsWith(`rsup-${KEY}-`));
  assert.ok(main && platform, 'the first test packed them');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-global-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = withoutCargo({ RSUP_HOME: path.join(dir, '.rsup') });
  const npmGlobal = (prefix, files) =>
    run('npm', ['install', '-g', '--prefix', prefix, ...files, '--no-audit', '--no-fund'], { cwd: dir, env });

  const full = path.join(dir, 'full');
  const both = await npmGlobal(full, [main, platform]);
  assert.equal(both.code, 0, both.out);
  const onPath = { ...env, PATH: `${path.join(full, 'bin')}${path.delimiter}${env.PATH}` };
  const version = await run('rsup', ['--version'], { cwd: dir, env: onPath });
  assert.equal(version.code, 0, version.out);
  assert.match(version.out, /\d+\.\d+\.\d+/);

  // npm skips an optional dependency it cannot fetch: here the registry
  // has no rsup-<platform> of this version.
  const bare = path.join(dir, 'bare');
  const alone = await npmGlobal(bare, [main]);
  assert.equal(alone.code, 0, alone.out);
  const missing = await run(path.join(bare, 'bin', 'rsup'), ['--version'], { cwd: dir, env });
  assert.equal(missing.code, 1, missing.out);
  assert.match(missing.out, new RegExp(`no rsup binary for ${KEY} is installed. npm installs it with the optional dependency rsup-${KEY}`));
  const api = await run(
    process.execPath,
    ['-e', `const r = require(${JSON.stringify(path.join(bare, 'lib', 'node_modules', 'rsup'))}); r.ready(); console.log(r.supervisor())`],
    { cwd: dir, env },
  );
  assert.equal(api.code, 0, api.out);
  assert.equal(api.out.trim(), 'none');
});
