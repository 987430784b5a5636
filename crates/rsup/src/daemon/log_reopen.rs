//! `reloadLogs` (and SIGUSR2, as for PM2's daemon): every copier opens its
//! log files again at their paths, so that output goes to the files log
//! rotation has just created rather than to those it moved away.
//!
//! Copiers are tasks that own their files, so each is asked and answers
//! once done: when [`reopen_all`] returns, every file is open at its path
//! again (created if it was removed).

use std::sync::{LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A copier that has not answered in this long is left to finish on its
/// own (it is writing a large backlog, or its stream just ended).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Sent to a copier; it answers once its files are open again.
pub type ReopenAsk = oneshot::Sender<()>;

/// Every live copier's inbox.
static COPIERS: LazyLock<Mutex<Vec<mpsc::UnboundedSender<ReopenAsk>>>> =
    LazyLock::new(Default::default);

/// Registers a copier; it reads asks from the receiver for as long as it
/// runs, and is forgotten once it drops it.
pub fn register() -> mpsc::UnboundedReceiver<ReopenAsk> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut copiers = COPIERS.lock().unwrap();
    copiers.retain(|c| !c.is_closed());
    copiers.push(tx);
    rx
}

/// Asks every copier to open its files again and waits for the answers;
/// returns how many copiers did.
pub async fn reopen_all() -> usize {
    let answers: Vec<oneshot::Receiver<()>> = {
        let mut copiers = COPIERS.lock().unwrap();
        copiers.retain(|c| !c.is_closed());
        copiers
            .iter()
            .filter_map(|c| {
                let (tx, rx) = oneshot::channel();
                c.send(tx).ok().map(|_| rx)
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    let mut done = 0;
    for answer in answers {
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(())) => done += 1,
            // The copier ended meanwhile: it has nothing to open.
            Ok(Err(_)) => {}
            Err(_) => {
                tracing::warn!("reloadLogs: some log writers did not answer in time");
                break;
            }
        }
    }
    done
}
