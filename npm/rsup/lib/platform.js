'use strict';

// Platform keys as napi-rs names them, so per-platform packages and the
// binary built from source agree: linux-x64-gnu, darwin-arm64, ...
const fs = require('node:fs');

function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    // No ldd (distroless images): ask Node which libc it runs on.
    const header = process.report?.getReport?.().header;
    return header ? !header.glibcVersionRuntime : false;
  }
}

function platformKey(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

module.exports = { platformKey };
