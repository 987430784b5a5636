//! Two apps on one port, as PM2's cluster mode allows (one script started
//! under two names): they share the daemon's socket, one app's reload or
//! stop, and `rsup update`, refuse no connection, and the port closes with the last of them.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::Status;

#[test]
fn two_apps_share_a_port_until_the_last_stops() {
    let r = Rsup::new();
    let port = free_port().to_string();
    let env = [("PORT", port.as_str())];
    assert_success(&r.start_fixture("http.js", "http", &["-i", "2"], &env));
    assert_success(&r.start_fixture("http.js", "http2", &[], &env));
    wait_for("three listening processes", || {
        let n = r
            .report("report")
            .iter()
            .filter(|l| l.starts_with("listening "))
            .count();
        (n == 3).then_some(())
    });
    let pids = |name: &str| -> Vec<String> {
        r.jlist()
            .into_iter()
            .filter(|p| p.name == name && p.status == Status::Online)
            .map(|p| p.pid.unwrap().to_string())
            .collect()
    };
    let second = pids("http2");
    let port: u16 = port.parse().unwrap();
    let tally = under_load(port, |tally| {
        wait_for("both apps to serve", || {
            let seen = tally.pids.lock().unwrap();
            let first = pids("http");
            (first.len() == 2
                && seen.iter().any(|p| first.contains(p))
                && seen.contains(&second[0]))
            .then_some(())
        });
        // The daemon re-executes itself keeping the one socket of both
        // apps; one app's reload and stop leave the other serving on it.
        r.ok(&["update"]);
        r.ok(&["reload", "http"]);
        r.ok(&["stop", "http"]);
    });
    tally.assert_no_failures();
    assert_eq!(r.process("http2").restarts, 0);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    r.ok(&["delete", "http2"]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port stays open after its last app stopped"
    );
}
