//! Index rows inserted on a helper thread while the pack they point into is still written.
//!
//! Inserting 100,000 rows into SQLite takes as long as hashing and writing their objects
//! (W5, W2: ~0.4 s each on the project's machine), so a pack writer hands its rows, batch by
//! batch, to an [`IndexInsert`](rsdos_core::IndexInsert) session owned by a helper thread, and
//! the two run on both cores. The session commits only when the writer says so, after the
//! pack's bytes are durable: no row is ever visible before the bytes it points at.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rsdos_core::{Error, PackedEntry, Result};

use crate::container::Container;

/// Batches queued to the helper at most: bounds the rows held in memory.
const QUEUED_BATCHES_MAX: usize = 4;

enum Message {
    Rows(Vec<PackedEntry>),
    Commit,
}

/// One open insert session on a helper thread. Dropping it without
/// [`commit`](RowFeeder::commit) rolls the session back (and waits for that).
pub(crate) struct RowFeeder {
    sender: Option<SyncSender<Message>>,
    helper: Option<JoinHandle<Result<u64>>>,
}

impl RowFeeder {
    /// Starts a helper thread with an open insert session of `container`'s index; `None` when
    /// no thread can be started (the caller then inserts its rows itself).
    pub(crate) fn start(container: &Container) -> Option<Self> {
        let (sender, receiver) = sync_channel(QUEUED_BATCHES_MAX);
        let container = container.clone();
        let helper = std::thread::Builder::new()
            .name("rsdos-index-rows".into())
            .spawn(move || insert_until_commit(&container, receiver))
            .ok()?;
        Some(RowFeeder {
            sender: Some(sender),
            helper: Some(helper),
        })
    }

    /// Queues rows for the session (blocks while the helper is [`QUEUED_BATCHES_MAX`] batches
    /// behind). `false`: the helper failed and takes no more rows (nothing of its session
    /// will be committed).
    #[must_use]
    pub(crate) fn feed(&mut self, rows: Vec<PackedEntry>) -> bool {
        match &self.sender {
            Some(sender) => sender.send(Message::Rows(rows)).is_ok(),
            None => false,
        }
    }

    /// Commits everything fed, once the helper has inserted it; returns the rows added.
    pub(crate) fn commit(mut self) -> Result<u64> {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Commit);
        }
        self.join()
    }

    fn join(&mut self) -> Result<u64> {
        match self.helper.take() {
            Some(helper) => helper.join().unwrap_or_else(|_| {
                Err(Error::InvalidArgument(
                    "BUG: the index insert thread panicked".into(),
                ))
            }),
            None => Ok(0),
        }
    }
}

impl Drop for RowFeeder {
    fn drop(&mut self) {
        // Without a Commit message the helper drops its session: a rollback.
        self.sender = None;
        let _ = self.join();
    }
}

fn insert_until_commit(container: &Container, receiver: Receiver<Message>) -> Result<u64> {
    let mut session = container.index().begin_insert()?;
    for message in receiver {
        match message {
            Message::Rows(rows) => session.insert(&rows)?,
            Message::Commit => return session.commit(),
        }
    }
    // The writer went away without committing: the session is rolled back as it drops.
    Ok(0)
}
