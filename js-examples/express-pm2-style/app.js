'use strict';

// The PM2 way, as many apps have it: `process.send('ready')` once listening
// (for `wait_ready`), and a SIGINT handler that closes the server. rsup runs
// it unchanged: it gives Node apps an IPC channel and sends SIGINT to stop.

const express = require('express');

const app = express();
const port = Number(process.env.PORT || 3000);

app.get('/', (req, res) => res.json({ hello: 'world', pid: process.pid }));
app.get('/slow', (req, res) => setTimeout(() => res.send('done\n'), 1000));

const server = app.listen(port, () => {
  console.log(`listening on ${port}`);
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  // What PM2's docs suggest. Enough when no client keeps a connection open;
  // express-rsup/ shows what it takes when one does.
  server.close((err) => {
    process.exit(err ? 1 : 0);
  });
});
