#!/usr/bin/env node
'use strict';

// `npm run pack`: the npm tarballs of a release, as napi-rs lays them out.
// For each target in npm/rsup's `napi.targets` it builds the addon and the
// `rsup` binary with cargo, puts them into a copy of npm/<platform>/ and
// packs that (rsup-<platform>-<version>.tgz); then packs the main package
// (rsup-<version>.tgz), which lists every rsup-<platform> in
// optionalDependencies and ships no native file.
//
//   node scripts/pack.js [--debug] [--out-dir DIR]
//
// --debug    cargo's dev profile (what the tests pack, reusing their build)
// --out-dir  where the tarballs go; default target/npm

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { cargoBuild, checkCargo, BuildError } = require('../npm/rsup/scripts/build');

const ROOT = path.join(__dirname, '..');
const MAIN = path.join(ROOT, 'npm', 'rsup');

// napi-rs's platform keys for the Rust target triples rsup can list.
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
};

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

function hostTriple() {
  const out = spawnSync('rustc', ['-vV'], { encoding: 'utf8' });
  const line = (out.stdout || '').split('\n').find((l) => l.startsWith('host: '));
  if (!line) throw new BuildError('rustc -vV did not name the host target');
  return line.slice('host: '.length).trim();
}

// The package.json facts that have to agree for npm to install the right
// per-platform package: returns [triple, key, platform package dir] per target.
function targets(main) {
  const list = (main.napi && main.napi.targets) || [];
  if (list.length === 0) throw new BuildError('npm/rsup/package.json lists no napi.targets');
  return list.map((triple) => {
    const key = PLATFORMS[triple];
    if (!key) throw new BuildError(`napi.targets: no platform key known for ${triple}`);
    const dir = path.join(ROOT, 'npm', key);
    const pkg = readJson(path.join(dir, 'package.json'));
    const name = `${main.name}-${key}`;
    if (pkg.name !== name) throw new BuildError(`npm/${key}/package.json: name is ${pkg.name}, not ${name}`);
    if (pkg.version !== main.version) {
      throw new BuildError(`npm/${key}/package.json: version ${pkg.version} is not rsup's ${main.version}`);
    }
    const wanted = (main.optionalDependencies || {})[name];
    if (wanted !== main.version) {
      throw new BuildError(`npm/rsup/package.json: optionalDependencies["${name}"] must be "${main.version}"`);
    }
    return { triple, key, dir, pkg };
  });
}

function npmPack(dir, outDir) {
  const run = spawnSync('npm', ['pack', dir, '--pack-destination', outDir, '--json', '--loglevel=error'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (run.status !== 0) throw new BuildError(`npm pack ${dir} failed (exit ${run.status})`);
  return path.join(outDir, JSON.parse(run.stdout)[0].filename);
}

function stagePlatform({ triple, key, dir, pkg }, release, host, stageRoot) {
  const cross = triple === host ? undefined : triple;
  const addon = cargoBuild('rsup-node', release, cross)
    .find((a) => a.target.kind.includes('cdylib'))
    ?.filenames.find((f) => /\.(so|dylib)$/.test(f));
  const binary = cargoBuild('rsup', release, cross).find((a) => a.target.kind.includes('bin') && a.executable)
    ?.executable;
  if (!addon || !binary) throw new BuildError(`cargo did not report the addon and binary for ${triple}`);
  const stage = path.join(stageRoot, key);
  fs.mkdirSync(stage);
  for (const file of ['package.json', 'README.md']) fs.copyFileSync(path.join(dir, file), path.join(stage, file));
  const files = { [`rsup.${key}.node`]: addon, rsup: binary };
  for (const [name, from] of Object.entries(files)) {
    if (!pkg.files.includes(name)) throw new BuildError(`npm/${key}/package.json: "files" lacks ${name}`);
    fs.copyFileSync(from, path.join(stage, name));
    fs.chmodSync(path.join(stage, name), 0o755);
    strip(path.join(stage, name), cross);
  }
  return stage;
}

// Debug info is most of a binary's size (97 MB of a debug build's 115);
// users get none, as napi-rs's `--strip`. The host's strip handles the
// host's target only; without it the files ship as built.
function strip(file, cross) {
  if (cross) return;
  const run = spawnSync('strip', ['--strip-debug', file], { stdio: 'inherit' });
  if (run.error && run.error.code !== 'ENOENT') throw new BuildError(`strip ${file}: ${run.error.message}`);
  if (!run.error && run.status !== 0) throw new BuildError(`strip ${file} failed (exit ${run.status})`);
}

function main(argv) {
  const release = !argv.includes('--debug');
  const at = argv.indexOf('--out-dir');
  const outDir = path.resolve(at >= 0 ? argv[at + 1] : path.join(ROOT, 'target', 'npm'));
  checkCargo();
  const mainPkg = readJson(path.join(MAIN, 'package.json'));
  const list = targets(mainPkg);
  const host = hostTriple();
  fs.mkdirSync(outDir, { recursive: true });
  const stageRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'rsup-pack-'));
  let tarballs;
  try {
    tarballs = list.map((t) => npmPack(stagePlatform(t, release, host, stageRoot), outDir));
  } finally {
    fs.rmSync(stageRoot, { recursive: true, force: true });
  }
  tarballs.push(npmPack(MAIN, outDir));
  for (const tarball of tarballs) console.log(tarball);
  return tarballs;
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`pack: ${err instanceof BuildError ? err.message : err.stack}`);
    process.exit(1);
  }
}
