//! `watch`: a change to the app's files reloads it without a failed
//! request; dot files, node_modules and the app's own logs do not.

use crate::harness::*;
use crate::http_client::under_load;

#[test]
fn a_changed_file_reloads_the_app_and_its_own_logs_do_not() {
    let r = Rsup::new();
    let src = r.path("src");
    std::fs::create_dir_all(src.join("node_modules/dep")).unwrap();
    std::fs::write(src.join("routes.js"), "// v1\n").unwrap();
    let out_log = src.join("out.log");
    let out = r.start_fixture(
        "http.js",
        "api",
        &[
            "--watch",
            src.to_str().unwrap(),
            "--watch-delay",
            "0.2",
            "-o",
            out_log.to_str().unwrap(),
        ],
        &[("PORT", "0"), ("LOG_REQUESTS", "1")],
    );
    assert_success(&out);
    let line = r.wait_report("report", "listening").remove(0);
    let port: u16 = line.rsplit("port=").next().unwrap().parse().unwrap();

    let tally = under_load(port, |tally| {
        // Requests are logged into the watched folder meanwhile.
        wait_for("requests to be served and logged", || {
            (tally.ok.load(std::sync::atomic::Ordering::Relaxed) > 50).then_some(())
        });
        std::fs::write(src.join("node_modules/dep/index.js"), "x").unwrap();
        std::fs::write(src.join(".env.swp"), "x").unwrap();
        std::fs::create_dir(src.join("lib")).unwrap();
        // In a folder made after the watch began.
        std::fs::write(src.join("lib/new.js"), "// v2\n").unwrap();
        wait_for("the change to reload the app", || {
            (r.process("api").restarts == 1).then_some(())
        });
        let after = tally.ok.load(std::sync::atomic::Ordering::Relaxed);
        wait_for("the new process to serve and log", || {
            (tally.ok.load(std::sync::atomic::Ordering::Relaxed) > after + 50).then_some(())
        });
    });
    tally.assert_no_failures();
    assert!(tally.pids.lock().unwrap().len() >= 2);
    assert!(std::fs::read_to_string(&out_log)
        .unwrap()
        .contains("request"));
    // Its log lines (and the ignored files) reloaded nothing more.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(r.process("api").restarts, 1);
}
