//! The CPU and memory figures lists show, measured in the background every
//! [`INTERVAL`] for every running instance, so that a list reads figures
//! instead of a `/proc` file per process: a thousand of those take tens of
//! milliseconds, which a list would otherwise wait for every time.

use super::apps::Apps;
use super::metrics::{first_reading, Sampler, Usage};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often every process is measured: the CPU figure is its use over
/// this interval.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// The latest figures, by pid.
#[derive(Default)]
pub struct Usages {
    figures: Mutex<HashMap<u32, Usage>>,
}

impl Usages {
    /// The latest figures of `pid`; a process not measured yet (it has
    /// just started) is measured now.
    pub fn of(&self, pid: u32) -> Usage {
        let known = self.figures.lock().unwrap().get(&pid).copied();
        known.unwrap_or_else(|| first_reading(pid))
    }

    /// The latest figures of each of `pids` that is a process, as
    /// [`Usages::of`] gives them, taking the lock once for a whole list.
    pub fn of_each(&self, pids: &[Option<u32>]) -> Vec<Option<Usage>> {
        let known: Vec<Option<Usage>> = {
            let figures = self.figures.lock().unwrap();
            pids.iter()
                .map(|pid| figures.get(&(*pid)?).copied())
                .collect()
        };
        // A process not measured yet is measured without the lock.
        pids.iter()
            .zip(known)
            .map(|(pid, known)| {
                let pid = (*pid)?;
                Some(known.unwrap_or_else(|| first_reading(pid)))
            })
            .collect()
    }

    pub(super) fn replace(&self, figures: HashMap<u32, Usage>) {
        *self.figures.lock().unwrap() = figures;
    }
}

/// Measures every running instance every [`INTERVAL`], for the daemon's
/// whole life, on a thread of its own so no request waits for it.
pub async fn keep_measured(apps: Arc<Apps>, usages: Arc<Usages>) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sampler = Sampler::default();
    loop {
        ticker.tick().await;
        let pids: HashSet<u32> = apps
            .instances()
            .iter()
            .filter_map(|h| h.state().pid)
            .collect();
        let round = tokio::task::spawn_blocking(move || {
            let figures = measure(&mut sampler, &pids);
            (sampler, figures)
        })
        .await;
        match round {
            Ok((kept, figures)) => {
                sampler = kept;
                usages.replace(figures);
            }
            // Reading /proc does not panic; if it did, start afresh.
            Err(_) => sampler = Sampler::default(),
        }
    }
}

/// One round: the figures of `pids`, and the sampler forgets every other.
fn measure(sampler: &mut Sampler, pids: &HashSet<u32>) -> HashMap<u32, Usage> {
    sampler.retain(pids);
    pids.iter().map(|&pid| (pid, sampler.sample(pid))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_measures_the_pids_given_and_lists_read_them() {
        let me = std::process::id();
        let usages = Usages::default();
        let mut sampler = Sampler::default();
        usages.replace(measure(&mut sampler, &HashSet::from([me, u32::MAX - 1])));
        let mine = usages.of(me);
        assert!(mine.memory_bytes > 1024 * 1024);
        // The figure stands until the next round.
        assert_eq!(usages.of(me), mine);
        assert_eq!(usages.of(u32::MAX - 1), Usage::NONE);
        // Many at once: the same figures, none for what is not running.
        assert_eq!(
            usages.of_each(&[Some(me), None, Some(u32::MAX - 1)]),
            [Some(mine), None, Some(Usage::NONE)]
        );
        // A pid no round saw is measured when asked for.
        usages.replace(measure(&mut sampler, &HashSet::new()));
        assert!(usages.figures.lock().unwrap().is_empty());
        assert!(usages.of(me).memory_bytes > 1024 * 1024);
        assert!(usages.of_each(&[Some(me)])[0].unwrap().memory_bytes > 1024 * 1024);
    }
}
