import pm2 from './pm2.js';

export const {
  connect,
  disconnect,
  close,
  start,
  restart,
  reload,
  stop,
  list,
  describe,
  killDaemon,
  kill,
  launchBus,
  getProcessIdByName,
  scale,
  dump,
  resurrect,
  clearDump,
  ping,
  getVersion,
  custom,
} = pm2;
// `delete` is a reserved word: exported under that name all the same, as
// PM2's types do (`import { delete as del } from 'rsup/pm2'`).
const del = pm2.delete;
export { del as delete };
export default pm2;
