'use strict';

// node bench/addon/bench.js [--runs N] [--duration S] [--connections C] [--rounds R]
//
// 1. require cost: median time of `require('rsup')` in N fresh processes,
//    without a supervisor (pure JS) and under rsup (loads the native addon
//    and claims the channel).
// 2. throughput: autocannon against a plain http server and the same server
//    with graceful(server), alternated, keep-alive connections.
// Prints figures; asserts nothing.

const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 21);
const DURATION = arg('duration', 5);
const CONNECTIONS = arg('connections', 50);
const ROUNDS = arg('rounds', 3);
const ADDON = path.join(__dirname, '..', '..', 'npm', 'rsup');

let autocannon;
try {
  autocannon = require('autocannon');
} catch {
  console.error('autocannon is missing: run `npm install` in bench/addon first');
  process.exit(1);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

function requireCost(label, stdio, env, target = ADDON) {
  const script = `const t = process.hrtime.bigint(); require(${JSON.stringify(target)});
    console.log(Number(process.hrtime.bigint() - t) / 1e6);`;
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const run = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, ...env },
      stdio,
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`${label}: ${run.stderr}`);
    times.push(Number(run.stdout.trim()));
  }
  console.log(`${label}: median ${median(times).toFixed(2)} ms over ${RUNS} processes`);
}

function startServer(mode) {
  const child = spawn(process.execPath, [path.join(__dirname, 'server.js')], {
    env: { ...process.env, MODE: mode },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve) => {
    readline.createInterface({ input: child.stdout }).once('line', (port) => resolve({ child, port }));
  });
}

async function load(mode) {
  const { child, port } = await startServer(mode);
  try {
    const result = await autocannon({
      url: `http://127.0.0.1:${port}/`,
      connections: CONNECTIONS,
      duration: DURATION,
    });
    return { rps: result.requests.average, p99: result.latency.p99, errors: result.errors + result.non2xx };
  } finally {
    child.kill('SIGKILL');
  }
}

async function main() {
  console.log(`node ${process.version}, ${require('node:os').cpus().length} CPUs`);
  // The first require of any file pays for the module loader itself.
  const empty = path.join(require('node:os').tmpdir(), `rsup-bench-empty-${process.pid}.js`);
  require('node:fs').writeFileSync(empty, '');
  requireCost('require() of an empty file (baseline)', ['ignore', 'pipe', 'pipe'], {}, empty);
  require('node:fs').rmSync(empty);
  requireCost("require('rsup'), no supervisor", ['ignore', 'pipe', 'pipe'], {});
  // fd 3 is a Unix stream socket, as rsup gives its workers.
  requireCost("require('rsup') under rsup (loads the native addon)", ['ignore', 'pipe', 'pipe', 'pipe'], { RSUP_FD: '3' });

  const results = { plain: [], graceful: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['plain', 'graceful']) results[mode].push(await load(mode));
  }
  console.log(`\nthroughput, ${CONNECTIONS} keep-alive connections, ${DURATION} s per run, ${ROUNDS} runs each, alternated:`);
  for (const [mode, runs] of Object.entries(results)) {
    const rps = runs.map((r) => r.rps);
    console.log(
      `  ${mode.padEnd(8)} ${rps.map((r) => r.toFixed(0)).join(' / ')} req/s, ` +
        `p99 ${runs.map((r) => r.p99).join(' / ')} ms, errors ${runs.reduce((n, r) => n + r.errors, 0)}`,
    );
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const delta = mean(results.graceful.map((r) => r.rps)) / mean(results.plain.map((r) => r.rps)) - 1;
  console.log(`  graceful vs plain: ${(delta * 100).toFixed(1)}% requests/s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
