'use strict';

// Written the way PM2's docs suggest, and left that way: the bench measures
// what each supervisor does with an ordinary app, not with one tuned for it.

const express = require('express');

const app = express();
const port = Number(process.env.PORT || 3000);
const WORK_MS = Number(process.env.WORK_MS || 3);
// HOST unset: every interface, as `app.listen(port)` does.
const host = process.env.HOST;

// Stands for a request that waits on something (a database, another
// service) for a few milliseconds, without burning the 2 shared cores.
app.get('/work', (req, res) => {
  setTimeout(() => res.send(`ok ${process.pid}\n`), WORK_MS);
});
app.get('/', (req, res) => res.json({ pid: process.pid }));

const onListening = () => {
  if (process.send) process.send('ready');
};
const server = host ? app.listen(port, host, onListening) : app.listen(port, onListening);

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
});
