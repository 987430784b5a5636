//! `cron_restart` (`--cron`): the app is reloaded on its schedule, without
//! a failed request.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::Status;

#[test]
fn a_scheduled_reload_loses_no_request() {
    let r = Rsup::new();
    // Every two seconds, seconds first.
    let out = r.start_fixture(
        "http.js",
        "api",
        &["-i", "2", "--cron", "*/2 * * * * *"],
        &[("PORT", "0")],
    );
    assert_success(&out);
    let line = r.wait_report("report", "listening").remove(0);
    let port: u16 = line.rsplit("port=").next().unwrap().parse().unwrap();
    let first: Vec<u32> = r.jlist().iter().filter_map(|p| p.pid).collect();

    let tally = under_load(port, |tally| {
        // Two instances replaced at least twice over.
        wait_for("scheduled reloads to replace the instances", || {
            (tally.pids.lock().unwrap().len() >= 6).then_some(())
        });
    });
    tally.assert_no_failures();
    for pid in first {
        assert!(!alive(pid), "{pid} was never replaced");
    }
    assert!(r.jlist().iter().all(|p| p.status == Status::Online));
}

#[test]
fn a_bad_pattern_is_named() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "api", &["--cron", "61 * * * *"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cron: invalid cron pattern \"61 * * * *\""),
        "{stderr}"
    );
    let config = r.path("eco.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"apps": [{{"name": "api", "script": {:?}, "cron_restart": "nope"}}]}}"#,
            fixture("app.js")
        ),
    )
    .unwrap();
    let out = r.run(&["start", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"cron_restart\": invalid cron pattern"),
        "{stderr}"
    );
    assert!(r.jlist().is_empty());
}
