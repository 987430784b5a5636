// What rsup runs in the container: two instances sharing port $PORT
// (default 3000), their output on the container's own stdout and stderr
// (what `kubectl logs` shows).
module.exports = {
  apps: [
    {
      name: 'web',
      script: 'server.js',
      instances: 2,
      exec_mode: 'cluster',
      // SIGKILL for a process still running this long after SIGINT; the
      // Deployment's terminationGracePeriodSeconds leaves room for it.
      kill_timeout: 15000,
      out_file: '/dev/stdout',
      error_file: '/dev/stderr',
    },
  ],
};
