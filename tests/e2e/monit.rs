//! `monit` in a real pseudo-terminal: it shows the processes and the
//! selected one's logs, and `q` leaves the terminal as it was.

use crate::harness::*;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

fn pty() -> (OwnedFd, OwnedFd) {
    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let p = nix::pty::openpty(Some(&size), None).expect("a pseudo-terminal");
    (p.master, p.slave)
}

#[test]
fn monit_shows_the_apps_and_their_logs_and_quits_cleanly() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let pid = r.process("api").pid.unwrap();

    let (master, slave) = pty();
    let io = |fd: &OwnedFd| Stdio::from(fd.as_fd().try_clone_to_owned().unwrap());
    let mut child = r
        .cmd()
        .arg("monit")
        .env("TERM", "xterm-256color")
        .stdin(io(&slave))
        .stdout(io(&slave))
        .stderr(io(&slave))
        .spawn()
        .unwrap();
    drop(slave);

    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let reader_thread = std::thread::spawn({
        let screen = screen.clone();
        move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once monit has exited and the terminal closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }
    });
    // Blank cells are skipped with cursor moves, so look for words.
    let seen = |text: &str| String::from_utf8_lossy(&screen.lock().unwrap()).contains(text);
    wait_for("the app and its output on the dashboard", || {
        (seen("api") && seen("online") && seen("out") && seen(&pid.to_string())).then_some(())
    });
    // The pid is in both logs' lines ("out line from <pid>", "err line
    // from <pid>") and nowhere else on the screen.
    wait_for("both logs on the dashboard", || {
        let all = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
        (all.matches(&pid.to_string()).count() >= 2).then_some(())
    });

    std::fs::File::from(master).write_all(b"q").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    reader_thread.join().unwrap();
    let all = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    // Back from the alternate screen: the shell's screen is as it was.
    assert!(
        all.contains("\x1b[?1049l"),
        "did not leave the alternate screen"
    );
}

#[test]
fn monit_without_a_terminal_says_what_to_use() {
    let r = Rsup::new();
    let out = r.run(&["monit"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("monit needs a terminal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
