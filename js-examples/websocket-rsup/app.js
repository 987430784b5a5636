'use strict';

// A WebSocket chat server with rsup's helpers. Without any of them, under
// rsup, its clients would already get a 1012 (Service Restart) close when an
// instance is replaced, 1001 (Going Away) when the app stops; here the app
// says goodbye in its own words, and tells its clients how long to wait
// before they reconnect, or not to.
// Runs the same under rsup, PM2, systemd or plain `node app.js` (Ctrl-C).

const http = require('node:http');
const { WebSocketServer } = require('ws');
const { ready, graceful, onShutdown } = require('rsup');

const port = Number(process.env.PORT || 3000);
const server = http.createServer((req, res) => res.end(`chat server ${process.pid}\n`));
const wss = new WebSocketServer({ server });

wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    for (const client of wss.clients) if (client.readyState === client.OPEN) client.send(String(data));
  });
});

graceful(server, {
  // Called once the server has stopped accepting, so reconnects go to the
  // next instance; the drain then waits for these connections to close.
  // `reason` is 'reload' when the app comes back, 'stop' when it does not,
  // 'unknown' under PM2 or a plain signal.
  websockets: (sockets, { reason }) => {
    const back = reason === 'reload';
    for (const ws of wss.clients) {
      ws.send(JSON.stringify({ type: 'bye', reconnectInMs: back ? 100 + Math.random() * 900 : null }));
      ws.close(back ? 1012 : 1001, back ? 'server restarting' : 'server stopping');
    }
  },
});

server.listen(port, () => {
  console.log(`listening on ${port}`);
  ready();
});

onShutdown(() => console.log('every client has gone'));
