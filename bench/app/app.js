'use strict';

// Written the way PM2's docs suggest, and left that way: the bench measures
// what each supervisor does with an ordinary app, not with one tuned for it.

const express = require('express');

const app = express();
const port = Number(process.env.PORT || 3000);
const WORK_MS = Number(process.env.WORK_MS || 3);

// Stands for a request that waits on something (a database, another
// service) for a few milliseconds, without burning the 2 shared cores.
app.get('/work', (req, res) => {
  setTimeout(() => res.send(`ok ${process.pid}\n`), WORK_MS);
});
app.get('/', (req, res) => res.json({ pid: process.pid }));

const server = app.listen(port, () => {
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
});
