//! `init` / `ecosystem`: write a sample `ecosystem.config.js` in the
//! current folder, as PM2 does (over an existing one, as PM2 does too).

use anyhow::{Context, Result};
use std::path::Path;

/// `init simple`: one app, the least a config needs.
const SIMPLE: &str = r#"module.exports = {
  apps: [{
    name: 'app1',
    script: './app.js',
  }],
};
"#;

/// `init`: the options most apps set, each with a word on what it does.
const FULL: &str = r#"module.exports = {
  apps: [{
    name: 'api',
    script: './index.js',
    instances: 2,            // or 'max': one per CPU
    wait_ready: true,        // online once the app calls process.send('ready')
    listen_timeout: 8000,    // ...or after this many ms
    kill_timeout: 5000,      // SIGINT, then SIGKILL after this many ms
    max_memory_restart: '500M',
    env: {
      NODE_ENV: 'development',
    },
    env_production: {        // rsup start ecosystem.config.js --env production
      NODE_ENV: 'production',
    },
  }, {
    name: 'worker',
    script: './worker.js',
    watch: ['./worker'],     // reload when these files change
  }],
};
"#;

/// The file's name, in the folder the command runs in.
pub const FILE_NAME: &str = "ecosystem.config.js";

/// Writes the sample (`mode` "simple" for the short one; any other word,
/// or none, for the full one, as PM2 reads it) and says where.
pub fn init(dir: &Path, mode: Option<&str>) -> Result<i32> {
    let text = if mode == Some("simple") { SIMPLE } else { FULL };
    let path = dir.join(FILE_NAME);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("File {} generated", path.display());
    Ok(0)
}
