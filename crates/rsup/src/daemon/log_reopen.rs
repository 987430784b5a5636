//! `reloadLogs` (and SIGUSR2, as for PM2's daemon): every copier opens its
//! log files again at their paths, so that output goes to the files log
//! rotation has just created rather than to those it moved away.
//!
//! Copiers are tasks that own their files, so each is asked and answers
//! once done: when [`reopen_all`] returns, every file is open at its path
//! again (created if it was removed).
//!
//! A round of asks is one number going up that every copier watches, and a
//! count of the copiers that have not answered it yet: a copier costs a
//! watch receiver, not a channel of its own (two per instance, a
//! thousand instances).

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// A copier that has not answered in this long is left to finish on its
/// own (it is writing a large backlog, or its stream just ended).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The daemon's copiers.
static COPIERS: LazyLock<Copiers> = LazyLock::new(Copiers::default);

/// Registers a copier; it is asked through the registration for as long as
/// it holds it.
pub fn register() -> Registration {
    COPIERS.register()
}

/// Asks every copier to open its files again and waits for the answers;
/// returns how many copiers did.
pub async fn reopen_all() -> usize {
    COPIERS.reopen_all().await
}

/// Some copiers and the rounds they are asked in.
struct Copiers {
    /// The number of the last round; changed only with `counts` held.
    round: watch::Sender<u64>,
    counts: Mutex<Counts>,
    /// Copiers of the last round that have not answered it.
    pending: watch::Sender<usize>,
}

#[derive(Default)]
struct Counts {
    live: usize,
    /// Answers to the last round.
    answered: usize,
}

impl Default for Copiers {
    fn default() -> Copiers {
        Copiers {
            round: watch::Sender::new(0),
            counts: Mutex::default(),
            pending: watch::Sender::new(0),
        }
    }
}

/// One copier's part in the rounds; counted while it lives.
pub struct Registration {
    copiers: &'static Copiers,
    round: watch::Receiver<u64>,
}

impl Copiers {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&'static self) -> Registration {
        let mut counts = self.counts();
        counts.live += 1;
        // Subscribed with the count held: a round begun before is not this
        // copier's to answer, one begun after is.
        Registration {
            copiers: self,
            round: self.round.subscribe(),
        }
    }

    async fn reopen_all(&self) -> usize {
        let mut pending = self.pending.subscribe();
        {
            let mut counts = self.counts();
            counts.answered = 0;
            self.pending.send_replace(counts.live);
            self.round.send_modify(|n| *n += 1);
        }
        let all = pending.wait_for(|n| *n == 0);
        if tokio::time::timeout(ANSWER_WITHIN, all).await.is_err() {
            tracing::warn!("reloadLogs: some log writers did not answer in time");
        }
        self.counts().answered
    }
}

impl Registration {
    /// Resolves once a round asks this copier, with that round's number.
    /// Cancel-safe, so that it can be raced against a read.
    pub async fn asked(&mut self) -> u64 {
        // The sender lives as long as the daemon.
        if self.round.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *self.round.borrow_and_update()
    }

    /// Says the files are open again since `round` asked. A newer round
    /// begun meanwhile is answered after the next ask.
    pub fn answer(&mut self, round: u64) {
        let copiers = self.copiers;
        let mut counts = copiers.counts();
        if *copiers.round.borrow() == round {
            counts.answered += 1;
            copiers.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let copiers = self.copiers;
        let mut counts = copiers.counts();
        counts.live -= 1;
        // Asked and gone before answering: nothing is left to wait for.
        if self.round.has_changed().unwrap_or(false) {
            copiers.pending.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copiers() -> &'static Copiers {
        Box::leak(Box::default())
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_waits_for_every_copier_and_not_for_one_that_is_gone() {
        let copiers = copiers();
        let mut a = copiers.register();
        let mut b = copiers.register();
        let gone = copiers.register();
        let answering = tokio::spawn(async move {
            for copier in [&mut a, &mut b] {
                let round = copier.asked().await;
                copier.answer(round);
            }
            (a, b)
        });
        let start = tokio::time::Instant::now();
        let round = tokio::spawn(copiers.reopen_all());
        while *copiers.round.borrow() == 0 {
            tokio::task::yield_now().await;
        }
        drop(gone);
        assert_eq!(round.await.unwrap(), 2);
        // Answered, not given up on (time only moves when all wait).
        assert!(start.elapsed() < ANSWER_WITHIN);

        // A copier that came after a round is asked from the next on.
        let (mut a, b) = answering.await.unwrap();
        let mut late = copiers.register();
        assert!(!late.round.has_changed().unwrap());
        drop(b);
        let round = tokio::spawn(copiers.reopen_all());
        for copier in [&mut a, &mut late] {
            let n = copier.asked().await;
            copier.answer(n);
        }
        assert_eq!(round.await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copier_that_never_answers_is_given_up_on() {
        let copiers = copiers();
        let _silent = copiers.register();
        let start = tokio::time::Instant::now();
        assert_eq!(copiers.reopen_all().await, 0);
        assert!(start.elapsed() >= ANSWER_WITHIN);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_to_an_older_round_does_not_count_for_a_newer() {
        let copiers = copiers();
        let mut copier = copiers.register();
        let first = tokio::spawn(copiers.reopen_all());
        let old = copier.asked().await;
        let second = tokio::spawn(copiers.reopen_all());
        while *copiers.round.borrow() == old {
            tokio::task::yield_now().await;
        }
        copier.answer(old);
        assert_eq!(*copiers.pending.borrow(), 1);
        let new = copier.asked().await;
        assert!(new > old);
        copier.answer(new);
        assert_eq!(second.await.unwrap(), 1);
        // The first round's waiter sees the count of the last round.
        first.await.unwrap();
    }
}
