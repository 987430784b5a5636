'use strict';

// The server under load: MODE=plain is a bare node:http server, MODE=graceful
// the same server passed to graceful(). Prints its port once listening.

const http = require('node:http');

const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('hello world\n');
});
if (process.env.MODE === 'graceful') require('../../npm/rsup').graceful(server);
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
