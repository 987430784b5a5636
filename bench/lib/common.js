'use strict';

// What every benchmark script here needs: its settings from the
// environment, a pause, a median, a process's memory and a pid file.

const fs = require('node:fs');

// A non-negative number from the environment variable `name`, `fallback`
// when unset; `integer` insists on a whole number.
function num(name, fallback, { integer = false } = {}) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  const ok = integer ? Number.isInteger(n) : Number.isFinite(n);
  if (!ok || n < 0) throw new Error(`${name}=${v} is not a ${integer ? 'whole ' : ''}number`);
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The median of the finite values of `xs`; NaN when there are none.
function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Resident and peak memory of `pid` in kB (VmRSS, VmHWM); NaN when gone.
function memoryKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = s.match(/^VmRSS:\s+(\d+) kB/m);
    const hwm = s.match(/^VmHWM:\s+(\d+) kB/m);
    return { rss: rss ? Number(rss[1]) : NaN, hwm: hwm ? Number(hwm[1]) : NaN };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

// The pid in a pid file; null when there is none.
function readPid(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

module.exports = { num, sleep, median, memoryKb, readPid };
