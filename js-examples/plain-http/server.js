// A plain node:http server: one line to drain it, one to say it is ready.

import http from 'node:http';
import { graceful, ready, readiness, onShutdown } from 'rsup';

const port = Number(process.env.PORT || 3000);
const health = readiness();

const server = http.createServer((req, res) => {
  if (req.url === '/health') return health(req, res);
  if (req.url === '/slow') {
    setTimeout(() => res.end('done\n'), 1000);
    return;
  }
  res.end(`hello from ${process.pid}\n`);
});

graceful(server).listen(port, () => {
  console.log(`listening on ${port}`);
  ready();
});

onShutdown(() => console.log('bye'), { name: 'goodbye' });
