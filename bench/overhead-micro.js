'use strict';

// What the preload's drain (npm/rsup/lib/drain.js) adds to each request,
// without the network: an http server gets an in-memory connection and
// answers `GET /` with 'ok', one request after the other, N times per
// slice; servers with and without drainer() take turns, slice by slice, so
// the machine's other load touches them alike. Prints the median time per
// request of each and its ratio to the server without a drainer. Only the
// JavaScript of a request is timed here (no system calls), so the ratio is
// larger than the one wrk sees end to end.
//
//   node bench/overhead-micro.js                     # this tree's drain.js
//   BEFORE=<git rev> node bench/overhead-micro.js    # and that revision's beside it
//   node bench/overhead-micro.js name=path/to/drain.js ...
//
//   SLICES=40 REQUESTS=3000 (per slice)

const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { median } = require('./lib/common');
const { Duplex } = require('node:stream');

const REPO = path.resolve(__dirname, '..');
const SLICES = Number(process.env.SLICES || 40);
const REQUESTS = Number(process.env.REQUESTS || 3000);
const REQ = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

function server(drainPath) {
  const s = http.createServer((req, res) => res.end('ok'));
  if (drainPath) require(drainPath).drainer(s);
  return s;
}

// n requests on one in-memory keep-alive connection, each sent once the
// previous response (ending in 'ok') is written.
function slice(s, n) {
  return new Promise((resolve) => {
    let left = n;
    const conn = new Duplex({
      read() {},
      write(chunk, enc, cb) {
        cb();
        const k = chunk.length;
        if (k >= 2 && chunk[k - 2] === 0x6f && chunk[k - 1] === 0x6b) {
          if (--left === 0) {
            conn.destroy();
            resolve();
          } else setImmediate(() => conn.push(REQ));
        }
      },
    });
    conn.remoteAddress = '127.0.0.1';
    s.emit('connection', conn);
    conn.push(REQ);
  });
}


async function main() {
  const given = process.argv.slice(2).map((a) => {
    const [name, file] = a.split('=');
    return { name, file: path.resolve(file) };
  });
  const variants = [{ name: 'no drainer', file: null }];
  if (given.length) variants.push(...given);
  else variants.push({ name: 'drain.js', file: path.join(REPO, 'npm', 'rsup', 'lib', 'drain.js') });
  if (process.env.BEFORE) {
    const rev = process.env.BEFORE;
    // The whole lib/ of that revision: drain.js requires its siblings.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drain-'));
    const archive = execFileSync('git', ['-C', REPO, 'archive', rev, 'npm/rsup/lib'], { maxBuffer: 64 << 20 });
    execFileSync('tar', ['-x', '-C', dir], { input: archive });
    const file = path.join(dir, 'npm', 'rsup', 'lib', 'drain.js');
    variants.push({ name: `drain.js@${rev}`, file });
  }
  for (const v of variants) {
    v.server = server(v.file);
    v.ns = [];
    await slice(v.server, REQUESTS); // warm-up
  }
  for (let i = 0; i < SLICES; i++) {
    for (const v of variants) {
      const t0 = process.hrtime.bigint();
      await slice(v.server, REQUESTS);
      v.ns.push(Number(process.hrtime.bigint() - t0) / REQUESTS);
    }
  }
  const base = variants[0];
  console.log(`${process.version}, ${SLICES} slices of ${REQUESTS} requests; medians`);
  for (const v of variants) {
    const ratio = median(v.ns.map((x, i) => x / base.ns[i]));
    const extra = median(v.ns.map((x, i) => x - base.ns[i]));
    console.log(
      `${v.name.padEnd(24)} ${median(v.ns).toFixed(0).padStart(6)} ns/request` +
        (v === base ? '' : `  x ${ratio.toFixed(3)}  (+${extra.toFixed(0)} ns)`),
    );
  }
}

main();
