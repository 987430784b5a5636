//! Pausing every reader of the children's pipes and channels, for the
//! moment before the daemon re-executes itself (`rsup update`, see
//! [`super::reexec`]).
//!
//! A reader pauses only where it holds nothing it has read and not yet
//! passed on (a log chunk written, no partial message buffered), so that
//! what is still unread stays in the kernel for the next image of the
//! daemon, and nothing is lost or read twice. [`Gate::freeze`] returns once every
//! reader has paused; [`Gate::thaw`] lets them go on, should the re-exec
//! fail.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One daemon's freeze: whether one is asked for, and how many readers
/// have not paused.
#[derive(Debug)]
pub struct Gate {
    frozen: watch::Sender<bool>,
    running: watch::Sender<usize>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            frozen: watch::Sender::new(false),
            running: watch::Sender::new(0),
        }
    }
}

/// One reader's part in a freeze; counted while it lives.
pub struct Reader {
    gate: Arc<Gate>,
    frozen: watch::Receiver<bool>,
}

impl Reader {
    pub fn register(gate: &Arc<Gate>) -> Reader {
        gate.running.send_modify(|n| *n += 1);
        Reader {
            gate: gate.clone(),
            frozen: gate.frozen.subscribe(),
        }
    }

    /// Resolves once a freeze is asked for. Cancel-safe, so that it can be
    /// raced against a read.
    pub async fn asked(&mut self) {
        // An error means the gate is gone, which it is not while we hold it.
        let _ = self.frozen.wait_for(|f| *f).await;
    }

    /// Pauses until the freeze ends (if the re-exec succeeds, it never
    /// does: the process becomes the next image).
    pub async fn pause(&mut self) {
        self.gate.running.send_modify(|n| *n = n.saturating_sub(1));
        let _ = self.frozen.wait_for(|f| !*f).await;
        self.gate.running.send_modify(|n| *n += 1);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.gate.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Gate {
    /// Asks every reader to pause and waits until all have, or `limit`
    /// passes; false in that case (the freeze stays asked for: [`thaw`]).
    ///
    /// [`thaw`]: Gate::thaw
    pub async fn freeze(&self, limit: Duration) -> bool {
        self.frozen.send_replace(true);
        let mut running = self.running.subscribe();
        let all_paused = async move { running.wait_for(|n| *n == 0).await.is_ok() };
        tokio::time::timeout(limit, all_paused)
            .await
            .unwrap_or(false)
    }

    /// Lets every reader go on.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Resolves once no freeze is asked for.
    pub async fn thawed(&self) {
        let mut frozen = self.frozen.subscribe();
        let _ = frozen.wait_for(|f| !*f).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_freeze_waits_for_readers_to_pause_and_a_thaw_lets_them_go_on() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(8);
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(Gate::default());
        let mut me = Reader::register(&gate);
        let reader = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = me.asked() => me.pause().await,
                    got = rx.recv() => match got {
                        Some(n) => seen_tx.send(n).unwrap(),
                        None => break,
                    },
                }
            }
        });
        tx.send(1).await.unwrap();
        assert_eq!(seen.recv().await, Some(1));
        assert!(gate.freeze(Duration::from_secs(5)).await);
        // Paused: what comes now waits, unread.
        tx.send(2).await.unwrap();
        tokio::task::yield_now().await;
        assert!(seen.try_recv().is_err());
        gate.thaw();
        assert_eq!(seen.recv().await, Some(2));
        drop(tx);
        reader.await.unwrap();
    }
}
