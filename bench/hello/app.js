'use strict';

// The smallest HTTP app: what a supervisor adds to each request shows
// undiluted. No logging per request. PORT and HOST from the environment.

const http = require('node:http');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || '127.0.0.1';

http.createServer((req, res) => res.end('ok')).listen(port, host);
