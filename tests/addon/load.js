'use strict';

// Steady keep-alive load for reload tests: `clients` connections each send
// the next request as soon as the previous answer arrives, until stop().
// Every answer that is not a 200, and every socket error, is a failure.

const http = require('node:http');
const net = require('node:net');
const { request } = require('./helpers');

function keepAliveLoad(port, { clients = 8, pathname = '/' } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const stats = { ok: 0, failed: [], answers: [] };
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const res = await request(port, pathname, { agent });
        if (res.status === 200) {
          stats.ok += 1;
          stats.answers.push(res.body);
        } else {
          stats.failed.push(`HTTP ${res.status}`);
        }
      } catch (err) {
        stats.failed.push(err.code || err.message);
        // A refusing port answers at once: do not spin on it.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return stats;
    },
  };
}

// Resolves once `predicate()` holds, checking every 50 ms.
async function until(what, predicate, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// A TCP port nothing listens on right now.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

module.exports = { keepAliveLoad, until, freePort };
