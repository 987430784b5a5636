import rsup from './index.js';

export const { ready, onShutdown, graceful, track, isShuttingDown, readiness, supervisor } = rsup;
export default rsup;
