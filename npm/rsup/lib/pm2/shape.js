'use strict';

// rsup's answers in the shapes PM2's API gives. The process list itself is
// PM2's getMonitorData, built by the addon from the same Rust code as
// `rsup jlist` (rsup_proto::pm2); this file only picks from it.

const { requireBinding } = require('../binding');

// PM2's getMonitorData of rsup's processes.
function monitorData(processes) {
  return JSON.parse(requireBinding().pm2MonitorData(JSON.stringify(processes)));
}

// What PM2's stop, restart, reload and delete call back with: the processes,
// each also with its name, namespace, id, status and restarts on top.
function operated(processes) {
  return monitorData(processes).map((proc) => {
    const env = proc.pm2_env || {};
    return {
      ...proc,
      namespace: env.namespace,
      status: env.status,
      restart_time: env.restart_time,
    };
  });
}

// PM2's `process:event` packet: the process is its pm2_env without `env`.
function processEvent(event) {
  const [proc] = monitorData([event.process]);
  const { env, ...pm2Env } = proc.pm2_env;
  return { event: event.event, manually: event.manually, process: pm2Env, at: event.at_ms };
}

// PM2's `log:out` / `log:err` packet.
function logEvent(event) {
  return {
    process: { pm_id: event.id, name: event.name, rev: null, namespace: event.namespace },
    at: event.at_ms,
    data: event.data,
  };
}

// A message the app sent (`process.send`), as PM2's bus names and shapes
// it: `{ type, data }` under its type with `data`, anything else as
// `process:msg` with `raw`.
function messageEvent(event) {
  const m = event.message;
  const process = { pm_id: event.id, name: event.name, namespace: event.namespace };
  if (m && typeof m === 'object' && m.type && m.data) {
    return [String(m.type), { at: event.at_ms, data: m.data, process: { ...process, rev: null } }];
  }
  return ['process:msg', { at: event.at_ms, raw: m, process }];
}

module.exports = { monitorData, operated, processEvent, logEvent, messageEvent };
