'use strict';

// Shared by the addon suites: start a fixture in a child process, read its
// output line by line, and make real HTTP requests to it.

const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const readline = require('node:readline');

const FIXTURES = path.join(__dirname, 'fixtures');
const ADDON = path.join(__dirname, '..', '..', 'npm', 'rsup');

// Variables of the supervisors the package detects; a test sets the ones it
// wants, whatever environment the suite itself runs in.
const SUPERVISOR_VARS = [
  'RSUP_FD',
  'RSUP_KILL_TIMEOUT_MS',
  'RSUP_KILL_SIGNAL',
  'pm_id',
  'kill_timeout',
  'NOTIFY_SOCKET',
];

function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of SUPERVISOR_VARS) delete env[name];
  return { ...env, ...extra };
}

// Starts `node ...nodeArgs <file> ...args`. Returns the child plus:
//   waitFor(re)  resolves with the first stdout line matching re
//   stdout(), stderr()  everything printed so far
//   exited       resolves with { code, signal, at } when it exits
function start(file, { args = [], nodeArgs = [], env = {}, stdio = ['ignore', 'pipe', 'pipe'] } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, path.join(FIXTURES, file), ...args], {
    env: cleanEnv(env),
    stdio,
  });
  const lines = [];
  const waiters = [];
  let errText = '';
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.slice()) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.on('data', (d) => {
    errText += d;
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  const waitFor = (re, timeoutMs = 10_000) => {
    const found = lines.find((l) => re.test(l));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; stdout:\n${lines.join('\n')}\nstderr:\n${errText}`)),
        timeoutMs,
      );
      waiters.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      exited.then(() => setImmediate(() => {
        clearTimeout(timer);
        reject(new Error(`exited before printing ${re}; stdout:\n${lines.join('\n')}\nstderr:\n${errText}`));
      }));
    });
  };
  return { child, waitFor, exited, stdout: () => lines.slice(), stderr: () => errText };
}

// One request; resolves with { status, headers, body, localPort } or rejects with the
// socket error.
function request(port, pathname, { agent, headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent, headers }, (res) => {
      // Identifies the connection; the socket itself is detached on 'end'.
      const localPort = res.socket.localPort;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, localPort }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function killOnExit(...apps) {
  return () => {
    for (const app of apps) if (app && app.child.exitCode === null) app.child.kill('SIGKILL');
  };
}

module.exports = { start, request, sleep, cleanEnv, killOnExit, FIXTURES, ADDON };
