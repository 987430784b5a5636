#!/usr/bin/env node
'use strict';

// Builds the native addon from the workspace this package sits in and
// places it as rsup.<platform>.node next to index.js, where binding.js
// loads it before any per-platform package.
//
//   node scripts/build.js [--debug] [--with-cli]
//
// --debug     cargo's dev profile (faster to build; default is release)
// --with-cli  also build the `rsup` binary. A release build is copied to
//             native/rsup, which this package's `rsup` bin runs; a debug
//             build stays in target/debug (tests use it from there), so it
//             never replaces a release build (a failure is a warning: the
//             library does not need the binary)

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { platformKey } = require('../lib/platform');

const PACKAGE_ROOT = path.join(__dirname, '..');
const WORKSPACE = path.resolve(PACKAGE_ROOT, '..', '..');
const CARGO = process.env.CARGO || 'cargo';

class BuildError extends Error {}

function workspaceRoot() {
  if (!fs.existsSync(path.join(WORKSPACE, 'crates', 'rsup-node', 'Cargo.toml'))) {
    throw new BuildError(
      `the rsup sources are not at ${WORKSPACE}, so the addon cannot be built here.\n` +
        `Install rsup with its optional dependencies (rsup-${platformKey()} holds the built addon ` +
        'and binary), or build in a checkout of the rsup repository.',
    );
  }
  return WORKSPACE;
}

function checkCargo() {
  const probe = spawnSync(CARGO, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new BuildError(
      `cargo was not found (${probe.error ? probe.error.code : `exit ${probe.status}`}).\n` +
        `No prebuilt rsup addon matches this platform (${platformKey()}), so it has to be built ` +
        'from source, which needs Rust: install it from https://rustup.rs and run this again ' +
        '(or set CARGO to the cargo binary).',
    );
  }
}

// Runs cargo build and returns the artifacts cargo reports for the
// targets of `pkg` (cargo names them with underscores). `triple`: a
// target other than the host's.
function cargoBuild(pkg, release, triple) {
  const args = ['build', '-p', pkg, '--message-format=json-render-diagnostics'];
  if (release) args.push('--release');
  if (triple) args.push('--target', triple);
  const run = spawnSync(CARGO, args, {
    cwd: workspaceRoot(),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error) throw new BuildError(`cargo ${args.join(' ')}: ${run.error.message}`);
  if (run.status !== 0) throw new BuildError(`cargo ${args.join(' ')} failed (exit ${run.status})`);
  return run.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))
    .filter((msg) => msg.reason === 'compiler-artifact' && msg.target.name === pkg.replace(/-/g, '_'));
}

// Copy then rename, so a process that has the old file loaded keeps a
// consistent mapping.
function install(from, to, mode) {
  const tmp = `${to}.tmp-${process.pid}`;
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, tmp);
  if (mode) fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, to);
}

function buildAddon(release) {
  const artifact = cargoBuild('rsup-node', release).find((a) => a.target.kind.includes('cdylib'));
  const lib = artifact && artifact.filenames.find((f) => /\.(so|dylib|dll)$/.test(f));
  if (!lib) throw new BuildError('cargo did not report the rsup-node library it built');
  const dest = path.join(PACKAGE_ROOT, `rsup.${platformKey()}.node`);
  install(lib, dest);
  require(dest); // fails here, not in the app, if it cannot load
  return dest;
}

function buildCli(release) {
  const artifact = cargoBuild('rsup', release).find((a) => a.target.kind.includes('bin') && a.executable);
  if (!artifact) throw new BuildError('cargo did not report the rsup binary it built');
  if (!release) return artifact.executable;
  const dest = path.join(PACKAGE_ROOT, 'native', 'rsup');
  install(artifact.executable, dest, 0o755);
  return dest;
}

function main(argv) {
  const release = !argv.includes('--debug');
  checkCargo();
  workspaceRoot();
  console.log(`rsup: built ${buildAddon(release)}`);
  if (argv.includes('--with-cli')) {
    try {
      console.log(`rsup: built ${buildCli(release)}`);
    } catch (err) {
      console.warn(`rsup: warning: the rsup command was not built: ${err.message}`);
    }
  }
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`rsup: ${err instanceof BuildError ? err.message : err.stack}`);
    process.exit(1);
  }
}

module.exports = { main, cargoBuild, checkCargo, BuildError };
