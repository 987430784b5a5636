//! An app's operations across its instances, against fake processes on a
//! paused clock (see `launcher::fake`).

use super::*;
use crate::daemon::launcher::fake::{FakeLauncher, FakeProcess, Launches};
use crate::daemon::preload::Preload;
use crate::home::Home;
use std::time::Duration;

/// An app of `instances` instances that say `ready` (wait_ready), each
/// started and ready.
async fn ready_app(
    instances: u32,
    home: &tempfile::TempDir,
) -> (AppHandle, Launches, Vec<FakeProcess>) {
    let (launcher, mut launches) = FakeLauncher::new();
    let mut env = AppEnv::new(
        Home {
            dir: home.path().to_path_buf(),
        },
        Preload {
            path: None,
            problem: None,
        },
    );
    env.launcher = launcher;
    let mut spec = crate::test_support::spec();
    spec.node = false;
    spec.interpreter = None;
    spec.wait_ready = true;
    let app = AppHandle::spawn(spec, Arc::new(env), 0, |_| {});
    let start = tokio::spawn({
        let app = app.clone();
        async move { app.run(Op::Start(instances)).await }
    });
    let mut processes = Vec::new();
    for _ in 0..instances {
        let p = launches.next().await;
        p.ready();
        processes.push(p);
    }
    soon(start).await.unwrap().unwrap();
    (app, launches, processes)
}

async fn soon<T>(work: impl Future<Output = T>) -> T {
    let limit = Duration::from_secs(3600);
    tokio::time::timeout(limit, work).await.expect("it ends")
}

fn pids(app: &AppHandle) -> Vec<Option<u32>> {
    app.instances().iter().map(|h| h.state().pid).collect()
}

#[tokio::test(start_paused = true)]
async fn a_reload_stops_at_the_first_instance_whose_new_process_fails() {
    let home = tempfile::tempdir().unwrap();
    let (app, mut launches, old) = ready_app(3, &home).await;
    let (progress, _replies) = mpsc::unbounded_channel();
    let reload = tokio::spawn({
        let app = app.clone();
        async move {
            app.run(Op::Reload {
                selection: Selection::All,
                options: ReloadOptions::default(),
                update: SpecUpdate::default(),
                progress,
            })
            .await
        }
    });
    // One at a time: the first is replaced, the second's new process
    // crashes before it is ready.
    let first = launches.next().await;
    first.ready();
    let second = launches.next().await;
    second.exit(1);
    let error = soon(reload).await.unwrap().err().expect("the reload fails");
    assert!(
        error.contains("exited with code 1 before it was ready"),
        "{error}"
    );
    assert!(error.contains("id 1"), "{error}");

    assert_eq!(
        pids(&app),
        [Some(first.pid()), Some(old[1].pid()), Some(old[2].pid())]
    );
    assert!(old[0].exited().is_some(), "the replaced process is stopped");
    for kept in &old[1..] {
        assert!(kept.signals().is_empty() && kept.exited().is_none());
    }
    let statuses: Vec<Status> = app.instances().iter().map(|h| h.state().status).collect();
    assert_eq!(statuses, [Status::Online; 3]);
    // The third was never reached.
    assert!(launches.try_next().is_none());
    app.run(Op::Remove(Selection::All)).await.unwrap();
}
