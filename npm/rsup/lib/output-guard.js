'use strict';

// A worker's stdout and stderr are pipes to rsup's daemon. If the daemon
// dies (SIGKILL, a crash), their read ends close with it, and Node turns
// the next console.log into an EPIPE error that kills the app, before the
// next daemon can take it over. Output written until then is lost, as
// nothing reads it; the process is not. Other errors are left to the app,
// or to Node's default when it has no handler of its own.

function guardOutput() {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', function onOutputError(err) {
      if (err && err.code === 'EPIPE') return;
      if (stream.listenerCount('error') === 1) throw err;
    });
  }
}

module.exports = { guardOutput };
