//! The log verbs, client side: `logs` (which files, printed how),
//! `flush` and `reloadLogs`.

use super::args::LogsArgs;
use super::commands::{request, select};
use super::logs::{self, LogSource, Printer, Stream, Style};
use crate::config::date_format;
use crate::home::Home;
use anyhow::Result;
use rsup_proto::control::{Request, Target};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// PM2's `logs`: the last lines of each file, then what follows; with
/// `--nostream` the last lines only; with `--json` or `--format` what
/// follows only, in that form.
pub fn logs(home: &Home, a: LogsArgs) -> Result<i32> {
    let target = a.target.as_deref().unwrap_or("all");
    // PM2 lets --err win over --out.
    let only = match (a.out, a.err) {
        (_, true) => Some(Stream::Err),
        (true, false) => Some(Stream::Out),
        (false, false) => None,
    };
    let style = if a.nostream || !(a.json || a.format) {
        if a.raw {
            Style::Raw
        } else {
            Style::Prefixed {
                timestamp: a.timestamp.as_deref().map(|pattern| {
                    let converted = date_format::to_chrono(pattern);
                    if let Some(w) = converted.warning("--timestamp", pattern) {
                        eprintln!("rsup: warning: {w}");
                    }
                    converted.format
                }),
            }
        }
    } else if a.json {
        Style::Json
    } else {
        Style::Format
    };

    let mut sources = Vec::new();
    // The daemon's own log comes first, as PM2 shows its pm2.log.
    if target == "all" && only.is_none() && matches!(style, Style::Prefixed { .. }) {
        sources.push(LogSource {
            label: "rsup".into(),
            path: home.daemon_log(),
            stream: Stream::Daemon,
            id: 0,
            name: "rsup".into(),
        });
    }
    for p in select(home, target)? {
        let label = format!("{}|{}", p.id, p.name);
        for (stream, path) in [(Stream::Out, p.out_log), (Stream::Err, p.err_log)] {
            if only.is_some_and(|o| o != stream) || path == Path::new("/dev/null") {
                continue;
            }
            sources.push(LogSource {
                label: label.clone(),
                path,
                stream,
                id: p.id,
                name: p.name.clone(),
            });
        }
    }

    let mut printer = Printer::new(std::io::stdout().lock(), std::io::stderr().lock(), style);
    if a.nostream {
        logs::print_tail(&sources, a.lines, &mut printer)?;
        return Ok(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_ctrl_c(stop.clone());
    if a.lines == 0 || a.json || a.format {
        logs::follow(&sources, &mut printer, &stop)?;
    } else {
        logs::tail_then_follow(&sources, a.lines, &mut printer, &stop)?;
    }
    Ok(0)
}

/// PM2's `flush [target]`; `flush` and `flush all` also empty the
/// daemon's own log.
pub fn flush(home: &Home, target: Option<&str>) -> Result<i32> {
    let target = target.filter(|t| *t != "all").map(Target::parse);
    request(home, &Request::Flush { target })?;
    println!("[rsup] logs flushed");
    Ok(0)
}

pub fn reload_logs(home: &Home) -> Result<i32> {
    request(home, &Request::ReloadLogs)?;
    println!("[rsup] all logs reopened");
    Ok(0)
}

/// Sets `flag` on Ctrl-C so `logs` can end cleanly.
fn stop_on_ctrl_c(flag: Arc<AtomicBool>) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    extern "C" fn on_int(_: libc::c_int) {
        if let Some(f) = FLAG.get() {
            f.store(true, Ordering::SeqCst);
        }
    }
    let _ = FLAG.set(flag);
    let action = SigAction::new(
        SigHandler::Handler(on_int),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}
