'use strict';

// A file-backed event log that buffers lines and writes them in batches: the
// kind of resource whose last batch is lost if the process exits without
// flushing it.

const fs = require('node:fs');

class EventLog {
  constructor(file, flushEveryMs = 1000) {
    this.stream = fs.createWriteStream(file, { flags: 'a' });
    this.pending = [];
    this.timer = setInterval(() => this.flush(), flushEveryMs);
    this.timer.unref();
  }

  append(event) {
    if (!this.stream) throw new Error('event log is closed');
    this.pending.push(`${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`);
  }

  flush() {
    if (this.pending.length === 0) return;
    this.stream.write(this.pending.join(''));
    this.pending = [];
  }

  close() {
    clearInterval(this.timer);
    this.flush();
    const stream = this.stream;
    this.stream = null;
    return new Promise((resolve, reject) => {
      stream.once('error', reject);
      stream.end(resolve);
    });
  }
}

module.exports = { EventLog };
