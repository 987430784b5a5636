'use strict';

// The same express app with rsup's helpers. On shutdown: the server stops
// accepting and finishes its in-flight requests, the background work started
// by responses completes, then the event log is flushed and closed. Runs the
// same under rsup, PM2, systemd or plain `node app.js` (Ctrl-C).

const path = require('node:path');
const express = require('express');
const { ready, onShutdown, graceful, track, readiness } = require('rsup');
const { EventLog } = require('./event-log');

const port = Number(process.env.PORT || 3000);
const events = new EventLog(process.env.EVENT_LOG || path.join(__dirname, 'events.log'));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const app = express();
app.use(express.json());

app.get('/', (req, res) => res.json({ hello: 'world', pid: process.pid }));
app.get('/slow', (req, res) => setTimeout(() => res.send('done\n'), 1000));
app.get('/health', readiness());

app.post('/orders', (req, res) => {
  const id = Date.now().toString(36);
  events.append({ type: 'order received', id });
  res.status(202).json({ id });
  // Continues after the response; shutdown waits for it before the log
  // is closed.
  track(async () => {
    await sleep(500); // e.g. a confirmation e-mail
    events.append({ type: 'confirmation sent', id });
  });
});

const server = graceful(
  // express 5 passes a listen error to this callback: never say ready then.
  app.listen(port, (err) => {
    if (err) {
      console.error(`cannot listen on ${port}: ${err.message}`);
      process.exit(1);
    }
    console.log(`listening on ${port}`);
    ready();
  }),
);

onShutdown(async () => {
  await events.close();
  console.log('event log flushed and closed');
}, { name: 'event log' });

module.exports = { server };
