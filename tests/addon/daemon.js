'use strict';

// The real rsup daemon for the addon suites: the binary (RSUP_BIN, or the
// most recently built of npm/rsup/native/rsup and cargo's target dirs), a
// private RSUP_HOME per suite, and a cleanup that leaves no process behind.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');
const { cleanEnv, ADDON } = require('./helpers');

const ROOT = path.join(__dirname, '..', '..');

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
const skip = RSUP ? false : 'no rsup binary with `start --wait-ready` (build it with scripts/build.js --with-cli)';

// A daemon of its own, started on demand by the first command. Register
// `cleanup` with test.after().
function privateDaemon(env = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-home-'));
  const pids = new Set();

  function rsup(args, timeoutMs = 30_000, extraEnv = {}) {
    return new Promise((resolve) => {
      const started = Date.now();
      const child = spawn(RSUP, args, {
        env: cleanEnv({ ...env, ...extraEnv, RSUP_HOME: home }),
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

  async function list() {
    const out = await rsup(['jlist', '--native'], 10_000);
    assert.equal(out.code, 0, out.stderr);
    const procs = JSON.parse(out.stdout);
    for (const p of procs) if (p.pid) pids.add(p.pid);
    return procs;
  }

  async function cleanup() {
    if (!RSUP) return fs.rmSync(home, { recursive: true, force: true });
    // `rsup kill` removes the pid file, so it is read first.
    const pidFile = path.join(home, 'rsup.pid');
    const daemonPid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim() || 0) : 0;
    await rsup(['kill'], 15_000);
    for (const pid of [daemonPid, ...pids]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone, as it should be.
      }
    }
    fs.rmSync(home, { recursive: true, force: true });
  }

  return { home, rsup, list, cleanup };
}

module.exports = { RSUP, skip, privateDaemon, ROOT };
