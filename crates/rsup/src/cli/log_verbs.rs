//! The log verbs, client side: `logs` (which files, printed how),
//! `flush` and `reloadLogs`.

use super::args::LogsArgs;
use super::client::{connect_existing, send};
use super::commands::{request, select};
use super::log_baseline::Baseline;
use super::logs::{self, LogSource, Printer, Stream, Style};
use crate::config::date_format;
use crate::home::Home;
use anyhow::Result;
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{Reply, Request, Target};
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
    sources.extend(sources_of(select(home, target)?, only));
    let mut printer = Printer::new(std::io::stdout().lock(), std::io::stderr().lock(), style);
    // As PM2: `--highlight` without a value highlights nothing.
    if std::env::var_os("NO_COLOR").is_none() {
        printer.highlight = a.highlight.flatten().map(String::into_bytes);
    }
    if a.nostream {
        logs::print_tail(&sources, a.lines, &mut printer)?;
        return Ok(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_ctrl_c(stop.clone());
    let rescan = Some(rescan(home, target, only));
    if a.lines == 0 || a.json || a.format {
        logs::follow(&sources, &mut printer, &stop, rescan)?;
    } else {
        logs::tail_then_follow(&sources, a.lines, &mut printer, &stop, rescan)?;
    }
    Ok(0)
}

/// The log files of `procs` that `logs` prints (`only` one stream, if set).
fn sources_of(procs: Vec<ProcessInfo>, only: Option<Stream>) -> Vec<LogSource> {
    let mut sources = Vec::new();
    for p in procs {
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
    sources
}

/// Asks the running daemon (never starting one) which processes `target`
/// names now, for the files of those started since `logs` began. A target
/// that names nothing for now, or a daemon that is gone, adds nothing.
fn rescan(home: &Home, target: &str, only: Option<Stream>) -> logs::Rescan {
    let home = home.clone();
    let target = Target::parse(target);
    let baseline = Baseline::take(&home.logs_dir());
    Box::new(move || {
        let Ok(Some(stream)) = connect_existing(&home) else {
            return vec![];
        };
        let request = Request::List {
            target: Some(target.clone()),
            pm2: false,
        };
        let Ok(Reply::Done { processes }) = send(stream, &request, |_| {}) else {
            return vec![];
        };
        sources_of(processes, only)
            .into_iter()
            .map(|s| {
                let offset = baseline.start_of(&s.path);
                (s, offset)
            })
            .collect()
    })
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
