'use strict';

// The package under the real rsup daemon: ready() flips the instance to
// online (start --wait-ready returns long before listen_timeout) and a stop
// runs the app's shutdown. Needs the rsup binary: RSUP_BIN, or one built by
// cargo or by `node npm/rsup/scripts/build.js --with-cli`.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');
const { cleanEnv, FIXTURES, ADDON } = require('./helpers');

const ROOT = path.join(__dirname, '..', '..');

// RSUP_BIN, else the most recently built of the usual places.
function findRsup() {
  const built = [
    path.join(ADDON, 'native', 'rsup'),
    path.join(ROOT, 'target', 'release', 'rsup'),
    path.join(ROOT, 'target', 'debug', 'rsup'),
  ]
    .filter((bin) => fs.existsSync(bin))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  const candidates = process.env.RSUP_BIN ? [process.env.RSUP_BIN] : built;
  for (const bin of candidates) {
    const help = spawnSync(bin, ['start', '--help'], { encoding: 'utf8' });
    if (help.status === 0 && help.stdout.includes('--wait-ready')) return bin;
  }
  return null;
}

const RSUP = findRsup();

function rsup(home, args, timeoutMs = 30_000) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(RSUP, args, {
      env: cleanEnv({ RSUP_HOME: home }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

async function processInfo(home, name) {
  const list = await rsup(home, ['jlist'], 10_000);
  assert.equal(list.code, 0, list.stderr);
  return JSON.parse(list.stdout).find((p) => p.name === name);
}

const skip = RSUP ? false : 'no rsup binary with `start --wait-ready` (build it with scripts/build.js --with-cli)';

// One daemon for the file, in a private RSUP_HOME; whatever happens, it and
// the app are gone afterwards.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-home-'));
let appPid = null;

test.after(async () => {
  if (!RSUP) return fs.rmSync(home, { recursive: true, force: true });
  await rsup(home, ['kill'], 10_000);
  const daemonPid = Number(fs.readFileSync(path.join(home, 'rsup.pid'), 'utf8').trim() || 0);
  for (const pid of [daemonPid, appPid]) {
    try {
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone, as it should be.
    }
  }
  fs.rmSync(home, { recursive: true, force: true });
});

test('ready() reaches rsup: start --wait-ready returns and the instance is online', { skip }, async () => {
  // listen_timeout is long: returning well before it means `ready` arrived.
  const start = await rsup(home, [
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
  const info = await processInfo(home, 'addon-ready');
  appPid = info.pid;
  assert.equal(info.status, 'online');
});

test('rsup stop runs the app\'s shutdown and sees exit code 0', { skip }, async () => {
  const stop = await rsup(home, ['stop', 'addon-ready'], 15_000);
  assert.equal(stop.code, 0, `rsup stop: ${stop.stdout}\n${stop.stderr}`);
  const stopped = await processInfo(home, 'addon-ready');
  assert.equal(stopped.status, 'stopped');
  assert.equal(stopped.last_exit && stopped.last_exit.code, 0, JSON.stringify(stopped.last_exit));
  assert.match(fs.readFileSync(stopped.out_log, 'utf8'), /cleanup/);
  assert.match(
    fs.readFileSync(stopped.err_log, 'utf8'),
    /shutting down \((rsup shutdown message|SIGINT)\), \d+ ms/,
  );
});
