//! Running as PID 1 in a container. The kernel makes PID 1 the parent of
//! every orphan, and nothing else will reap them; the supervisor's async
//! runtime only waits for its own children. So PID 1 forks: the child runs
//! the supervisor, and the parent only reaps zombies and forwards signals,
//! as tini does.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, ForkResult, Pid};

const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Returns in the process that should run the supervisor. As PID 1, the
/// calling process becomes the reaper and never returns.
pub fn become_reaper_if_pid1() {
    if getpid().as_raw() != 1 {
        return;
    }
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    // Blocked before the fork so no signal is lost in between; the child
    // unblocks them.
    if set.thread_block().is_err() {
        return;
    }
    // SAFETY: nothing else runs yet (no threads, no runtime).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
        }
        Ok(ForkResult::Parent { child }) => reap(child, &set),
        Err(e) => {
            eprintln!("rsup: cannot fork the PID 1 reaper ({e}); orphans will not be reaped");
            let _ = set.thread_unblock();
        }
    }
}

fn reap(supervisor: Pid, set: &SigSet) -> ! {
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == supervisor => {
                        std::process::exit(code)
                    }
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == supervisor => {
                        std::process::exit(128 + sig as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Ok(sig) => {
                let _ = kill(supervisor, sig);
            }
            Err(_) => {}
        }
    }
}
