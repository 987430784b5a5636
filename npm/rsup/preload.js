'use strict';

// Loaded by rsup into its Node workers (`node -r <this file>`): makes
// server.listen() take the supervisor's listening sockets, and closes and
// drains those servers when rsup says shutdown. Does nothing in a process
// rsup did not start (PM2, systemd, plain node).

if (process.env.RSUP_FD !== undefined) {
  const { claimChannel } = require('./lib/channel');
  const channel = claimChannel();
  if (channel && channel.listen) {
    const { patchListen } = require('./lib/listen-patch');
    const { createListenDrain } = require('./lib/listen-drain');
    const drain = createListenDrain(channel);
    patchListen(channel, drain.adopt);
    channel.onShutdown(drain.onShutdown);
  }
}
