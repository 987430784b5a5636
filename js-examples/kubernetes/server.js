// A plain node:http API, written as for PM2: it listens on $PORT and, on
// the kill signal (SIGINT, as PM2 sends), stops taking new connections and
// exits once the requests in flight are answered.
'use strict';

const http = require('node:http');

const port = Number(process.env.PORT || 3000);
let stopping = false;

const server = http.createServer((req, res) => {
  // Keep-alive clients are told to go once a stop has begun, or their
  // connection would hold the server open.
  if (stopping) res.setHeader('connection', 'close');
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from ${process.pid}\n`);
});

server.listen(port, () => console.log(`pid ${process.pid}: listening on ${port}`));

process.on('SIGINT', () => {
  stopping = true;
  console.log(`pid ${process.pid}: SIGINT, finishing the requests in flight`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
