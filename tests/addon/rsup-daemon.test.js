'use strict';

// The package under the real rsup daemon: ready() flips the instance to
// online (start --wait-ready returns long before listen_timeout) and a stop
// runs the app's shutdown. Needs the rsup binary: RSUP_BIN, or the one
// `node npm/rsup/scripts/build.js --with-cli` placed in npm/rsup/native.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');
const { cleanEnv, FIXTURES, ADDON } = require('./helpers');

const ROOT = path.join(__dirname, '..', '..');

function findRsup() {
  const candidates = [
    process.env.RSUP_BIN,
    path.join(ADDON, 'native', 'rsup'),
    path.join(ROOT, 'target', 'release', 'rsup'),
    path.join(ROOT, 'target', 'debug', 'rsup'),
  ].filter(Boolean);
  for (const bin of candidates) {
    if (!fs.existsSync(bin)) continue;
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
  const list = await rsup(home, ['jlist']);
  assert.equal(list.code, 0, list.stderr);
  return JSON.parse(list.stdout).find((p) => p.name === name);
}

test(
  'ready() reaches rsup: start --wait-ready returns and the instance is online',
  { skip: RSUP ? false : 'no rsup binary with `start --wait-ready` (build it with scripts/build.js --with-cli)' },
  async (t) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-home-'));
    t.after(async () => {
      await rsup(home, ['kill']);
      fs.rmSync(home, { recursive: true, force: true });
    });

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
    assert.equal(start.code, 0, start.stderr);
    assert.ok(start.ms < 20_000, `start took ${start.ms} ms`);
    const info = await processInfo(home, 'addon-ready');
    assert.equal(info.status, 'online');

    const stop = await rsup(home, ['stop', 'addon-ready']);
    assert.equal(stop.code, 0, stop.stderr);
    const stopped = await processInfo(home, 'addon-ready');
    assert.equal(stopped.status, 'stopped');
    assert.equal(stopped.last_exit && stopped.last_exit.code, 0, JSON.stringify(stopped.last_exit));
    const out = fs.readFileSync(stopped.out_log, 'utf8');
    assert.match(out, /cleanup/);
    const err = fs.readFileSync(stopped.err_log, 'utf8');
    assert.match(err, /shutting down \((rsup shutdown message|SIGINT)\)/);
  },
);
