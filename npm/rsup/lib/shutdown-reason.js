'use strict';

// Why the process is asked to stop, as apps see it (onShutdown handlers,
// graceful()'s websockets function) and as WebSocket clients are told:
//   'reload'  the app goes on (reload, restart, scale down): clients get
//             1012 Service Restart, and should come back;
//   'stop'    the app goes away (stop, delete, the daemon's shutdown):
//             clients get 1001 Going Away;
//   'unknown' nobody said (PM2, a plain signal, an rsup daemon older than
//             the reason): 1001, which claims nothing about a return.

const REASONS = new Set(['reload', 'stop']);

function shutdownReason(value) {
  return REASONS.has(value) ? value : 'unknown';
}

// The close frame a WebSocket gets for `reason`.
function closeFrameFor(reason) {
  return reason === 'reload' ? { code: 1012, text: 'Service Restart' } : { code: 1001, text: 'Going Away' };
}

module.exports = { shutdownReason, closeFrameFor };
