//! The instance lifecycle against fake processes on a paused clock: crash
//! restarts and their delays, stops that escalate to SIGKILL, reloads whose
//! new process fails, readiness. Fast, and exact about time where
//! end-to-end tests cannot be.

use super::*;
use crate::daemon::launcher::fake::{FakeLauncher, FakeProcess, Launches};
use crate::daemon::sockets::AppSockets;
use tokio::time::Instant;

struct Setup {
    handle: InstanceHandle,
    launches: Launches,
    /// Holds the log and pid file paths.
    _dir: tempfile::TempDir,
}

fn start(spec: AppSpec) -> Setup {
    let (launcher, launches) = FakeLauncher::new();
    let changed = Arc::new(Notify::new());
    let context = Arc::new(AppContext {
        sockets: Mutex::new(AppSockets::new(Arc::default(), changed.clone(), None)),
        changed,
        instance_changed: Notify::new(),
        preload: None,
        events: Arc::default(),
        retiring: watch::Sender::new(false).subscribe(),
        reloads: Arc::default(),
        launcher,
        freeze: Arc::default(),
        keeper: None,
        _kept_spec: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        id: 0,
        name: spec.name.clone(),
        instance: 0,
        out_log: dir.path().join("out.log"),
        err_log: dir.path().join("err.log"),
        combined_log: None,
        pid_file: dir.path().join("app.pid"),
        created_at_ms: now_ms(),
        unique_id: "u".into(),
    };
    let (handle, _settled) = InstanceHandle::start(identity, Arc::new(spec), context);
    Setup {
        handle,
        launches,
        _dir: dir,
    }
}

/// A spec that no real process would be started for anyway.
fn spec() -> AppSpec {
    let mut spec = crate::test_support::spec();
    spec.node = false;
    spec.interpreter = None;
    spec
}

/// Waits (on the paused clock: without time passing unless all else is
/// idle) until the instance's state is as `what` says.
async fn until(handle: &InstanceHandle, what: impl Fn(&InstanceState) -> bool) -> InstanceState {
    let mut state = handle.state.clone();
    soon(state.wait_for(|s| what(s)))
        .await
        .map(|s| s.clone())
        .expect("the instance is alive")
}

async fn online(handle: &InstanceHandle, process: &FakeProcess) {
    until(handle, |s| {
        s.status == Status::Online && s.pid == Some(process.pid())
    })
    .await;
}

/// `work`'s result, or a failed test if it would never come: on the paused
/// clock the limit passes as soon as nothing else can happen.
async fn soon<T>(work: impl std::future::Future<Output = T>) -> T {
    let limit = Duration::from_secs(3600);
    tokio::time::timeout(limit, work).await.expect("it ends")
}

/// Time from `since`, to the millisecond the timer wheel rounds to.
fn waited(since: Instant) -> Duration {
    let ms = since.elapsed().as_millis() as u64;
    Duration::from_millis(ms)
}

/// Nothing more is launched, however long one waits.
async fn no_more_launches(launches: &mut Launches) {
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(launches.try_next().is_none(), "nothing more is launched");
}

#[tokio::test(start_paused = true)]
async fn crashes_restart_with_growing_delays_until_max_restarts_then_errored() {
    let mut spec = spec();
    spec.exp_backoff_restart_delay_ms = 100;
    spec.max_restarts = 2;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let first = launches.next().await;
    online(&handle, &first).await;

    // Each exits at once, within min_uptime: unstable.
    let mut crashed = first;
    for (restarts, delay) in [(1, 100), (2, 150)] {
        let at = Instant::now();
        crashed.exit(1);
        let state = until(&handle, |s| s.status == Status::WaitingRestart).await;
        assert_eq!(state.pid, None);
        assert_eq!(state.last_exit.as_ref().unwrap().code, Some(1));
        let next = launches.next().await;
        assert_eq!(
            waited(at).as_millis() as u64,
            delay,
            "restart {restarts} waits 100 ms then 1.5 times longer"
        );
        assert_eq!(next.restarts(), restarts);
        online(&handle, &next).await;
        crashed = next;
    }
    crashed.exit(1);
    let state = until(&handle, |s| s.status == Status::Errored).await;
    assert_eq!((state.restarts, state.unstable_restarts), (2, 3));
    no_more_launches(&mut launches).await;
}

#[tokio::test(start_paused = true)]
async fn a_process_up_for_min_uptime_starts_the_unstable_count_over() {
    let mut spec = spec();
    spec.max_restarts = 1;
    let min_uptime = Duration::from_millis(spec.min_uptime_ms);
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    p.exit(1);
    let p = launches.next().await;
    online(&handle, &p).await;
    assert_eq!(handle.state().unstable_restarts, 1);
    tokio::time::sleep(min_uptime).await;
    p.exit(1);
    // Stable: restarted, and the count starts over.
    let p = launches.next().await;
    online(&handle, &p).await;
    assert_eq!(handle.state().unstable_restarts, 0);
    p.exit(1);
    let p = launches.next().await;
    p.exit(1);
    let state = until(&handle, |s| s.status == Status::Errored).await;
    assert_eq!((state.restarts, state.unstable_restarts), (3, 2));
    no_more_launches(&mut launches).await;
}

#[tokio::test(start_paused = true)]
async fn stop_exit_codes_leave_it_stopped_and_other_codes_restart() {
    let mut spec = spec();
    spec.stop_exit_codes = vec![42];
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    p.exit(1);
    let p = launches.next().await;
    online(&handle, &p).await;
    p.exit(42);
    let state = until(&handle, |s| s.status == Status::Stopped).await;
    assert_eq!(state.last_exit.unwrap().code, Some(42));
    assert_eq!(state.restarts, 1);
    no_more_launches(&mut launches).await;
}

#[tokio::test(start_paused = true)]
async fn stop_sends_the_kill_signal_then_sigkill_after_kill_timeout() {
    let mut spec = spec();
    spec.kill_signal = "SIGTERM".into();
    spec.kill_timeout_ms = 1600;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    online(&handle, &p).await;
    p.ignore(Signal::SIGTERM);
    let at = Instant::now();
    soon(handle.stop()).await;
    assert_eq!(waited(at), Duration::from_millis(1600));
    assert_eq!(p.signals(), [Signal::SIGTERM, Signal::SIGKILL]);
    let state = handle.state();
    assert_eq!(state.status, Status::Stopped);
    assert_eq!(state.last_exit.unwrap().signal.as_deref(), Some("SIGKILL"));

    // One that obeys goes at once, and a stop is no crash to restart.
    soon(handle.restart(None)).await;
    let p = launches.next().await;
    online(&handle, &p).await;
    let at = Instant::now();
    soon(handle.stop()).await;
    assert_eq!(waited(at), Duration::ZERO);
    assert_eq!(p.signals(), [Signal::SIGTERM]);
    assert_eq!(handle.state().status, Status::Stopped);
    no_more_launches(&mut launches).await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_whose_new_process_exits_before_ready_keeps_the_old_one() {
    let mut spec = spec();
    spec.wait_ready = true;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let old = launches.next().await;
    old.ready();
    online(&handle, &old).await;

    let reload = tokio::spawn({
        let handle = handle.clone();
        async move { handle.reload(None, false).await }
    });
    let failed = launches.next().await;
    failed.exit(3);
    let result = soon(reload).await.unwrap();
    assert_eq!(
        result,
        Err("the new process exited with code 3 before it was ready".into())
    );
    let state = handle.state();
    assert_eq!(state.status, Status::Online);
    assert_eq!(state.pid, Some(old.pid()));
    assert_eq!(state.restarts, 0);
    assert!(old.signals().is_empty());
    assert!(old.exited().is_none());

    // The old process still goes once a new one is ready.
    let reload = tokio::spawn({
        let handle = handle.clone();
        async move { handle.reload(None, false).await }
    });
    let new = launches.next().await;
    new.ready();
    assert_eq!(soon(reload).await.unwrap(), Ok(()));
    assert!(old.exited().is_some());
    let state = handle.state();
    assert_eq!((state.pid, state.restarts), (Some(new.pid()), 1));
    assert_eq!(state.status, Status::Online);
}

#[tokio::test(start_paused = true)]
async fn with_wait_ready_it_is_online_on_ready_or_at_listen_timeout() {
    let mut spec = spec();
    spec.wait_ready = true;
    spec.listen_timeout_ms = 8000;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    let at = Instant::now();
    online(&handle, &p).await;
    assert_eq!(waited(at), Duration::from_millis(8000));

    // A restart returns once the new process is ready.
    let restart = tokio::spawn({
        let handle = handle.clone();
        async move { handle.restart(None).await }
    });
    let p = launches.next().await;
    assert_eq!(handle.state().status, Status::Launching);
    let at = Instant::now();
    p.ready();
    soon(restart).await.unwrap();
    assert_eq!(waited(at), Duration::ZERO);
    assert_eq!(handle.state().status, Status::Online);
}

#[tokio::test(start_paused = true)]
async fn a_strict_reload_not_ready_within_listen_timeout_stops_the_new_process() {
    let mut spec = spec();
    spec.wait_ready = true;
    spec.listen_timeout_ms = 5000;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let old = launches.next().await;
    old.ready();
    online(&handle, &old).await;

    let reload = tokio::spawn({
        let handle = handle.clone();
        async move { handle.reload(None, true).await }
    });
    let silent = launches.next().await;
    let at = Instant::now();
    assert_eq!(
        soon(reload).await.unwrap(),
        Err("the new process was not ready within listen_timeout (5000 ms)".into())
    );
    assert_eq!(waited(at), Duration::from_millis(5000));
    assert_eq!(silent.signals(), [Signal::SIGINT]);
    assert!(silent.exited().is_some());
    let state = handle.state();
    assert_eq!((state.status, state.pid), (Status::Online, Some(old.pid())));
    assert!(old.signals().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_waiting_to_restart_keeps_it_down() {
    let mut spec = spec();
    spec.restart_delay_ms = 10_000;
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    online(&handle, &p).await;
    p.exit(1);
    until(&handle, |s| s.status == Status::WaitingRestart).await;
    soon(handle.stop()).await;
    let state = handle.state();
    assert_eq!((state.status, state.restarts), (Status::Stopped, 0));
    no_more_launches(&mut launches).await;
}

#[tokio::test(start_paused = true)]
async fn a_signal_reaches_the_running_process_only() {
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec());
    let p = launches.next().await;
    online(&handle, &p).await;
    p.ignore(Signal::SIGUSR2);
    assert_eq!(soon(handle.signal(Signal::SIGUSR2)).await, Ok(()));
    assert_eq!(p.signals(), [Signal::SIGUSR2]);
    assert_eq!(handle.state().status, Status::Online);

    soon(handle.stop()).await;
    let refused = soon(handle.signal(Signal::SIGUSR2)).await.unwrap_err();
    assert!(refused.contains("has no running process"), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn with_treekill_a_stop_sigkills_the_group_left_behind_at_kill_timeout() {
    let mut spec = spec();
    spec.kill_timeout_ms = 1600;
    assert!(spec.treekill);
    let Setup {
        handle,
        mut launches,
        ..
    } = start(spec);
    let p = launches.next().await;
    online(&handle, &p).await;
    p.leave_children();
    let at = Instant::now();
    soon(handle.stop()).await;
    // The main process went at SIGINT; its children got until the deadline.
    assert_eq!(waited(at), Duration::from_millis(1600));
    assert_eq!(p.signals(), [Signal::SIGINT, Signal::SIGKILL]);
    let state = handle.state();
    assert_eq!(state.status, Status::Stopped);
    assert_eq!(state.last_exit.unwrap().signal.as_deref(), Some("SIGINT"));
}
