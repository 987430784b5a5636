'use strict';

// How the Node API reaches the daemon: each call runs `rsup node-api`
// (crates/rsup/src/cli/node_api.rs), which does what the CLI does before a
// request leaves (finding RSUP_HOME, checking who owns it and who listens,
// starting the daemon, reading apps from PM2 options and ecosystem files),
// takes the call as one JSON line on stdin and writes the daemon's replies
// to stdout, one JSON line each. Its stderr (config warnings) is passed on.

const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { findBinary, binaryEnv, MISSING } = require('../binary');

// Starts `rsup node-api` with `call` on its stdin; `onLine` gets each reply
// line parsed. Returns the child. `keepStdin` leaves stdin open: closing it
// ends a subscription. `onEnd(err)` runs once the child has exited and its
// output has been read; `err` when it could not run.
function run(call, { cwd, env, keepStdin = false }, onLine, onEnd) {
  const binary = findBinary();
  if (!binary) {
    process.nextTick(onEnd, new Error(`rsup: ${MISSING}`));
    return null;
  }
  const child = spawn(binary, ['node-api'], {
    cwd,
    env: binaryEnv(binary, env),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let failed = null;
  child.on('error', (err) => {
    failed = new Error(`rsup: cannot run ${binary}: ${err.message}`);
  });
  // Writing to a relay that has already exited is its exit's business.
  child.stdin.on('error', () => {});
  child.stdin.write(`${JSON.stringify(call)}\n`);
  if (!keepStdin) child.stdin.end();
  readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    if (!line) return;
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch {
      failed = failed || new Error(`rsup: unreadable answer from rsup node-api: ${line.slice(0, 200)}`);
      return;
    }
    onLine(parsed);
  });
  // 'close' comes after both the exit and the end of stdout.
  child.on('close', (code, signal) => onEnd(failed, code, signal));
  return child;
}

// One call; `cb(err, reply)` with its final reply: `done`, `pong` or an
// `error` turned into an Error.
function call(request, options, cb) {
  let last = null;
  run(
    request,
    options,
    (reply) => {
      if (reply.reply !== 'progress') last = reply;
    },
    (err, code, signal) => {
      if (err) return cb(err);
      if (!last) {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        return cb(new Error(`rsup: rsup node-api ${how} without answering`));
      }
      if (last.reply === 'error') return cb(new Error(last.message));
      return cb(null, last);
    },
  );
}

module.exports = { run, call };
