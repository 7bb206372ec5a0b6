//! Index rows inserted on a helper thread while the pack they point into is still written.
//!
//! Inserting 100,000 rows into SQLite takes as long as hashing and writing their objects
//! (W5, W2: ~0.35-0.4 s each on the project's machine), so a pack writer hands its rows, batch
//! by batch, to an [`IndexInsert`](rsdos_core::IndexInsert) session owned by a helper thread,
//! and the two run on both cores. The session commits only when the writer says so, after the
//! pack's bytes are durable: no row is ever visible before the bytes it points at.
//!
//! The helper keeps every row it was given and hands them back at the end: their hashkeys
//! when the session committed, and the rows themselves when it did not (the session failed,
//! or could not begin), so that the writer inserts them itself. A helper that failed keeps
//! receiving until the writer ends it, so no queued batch is ever dropped, and it raises a
//! flag so that the writer stops handing it rows. Its error is not kept: the writer's own
//! insert of the same rows reports the failure if it persists.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rsdos_core::{Error, PackedEntry, Result};

use crate::container::Container;

/// Batches queued to the helper at most: bounds the rows in flight.
const QUEUED_BATCHES_MAX: usize = 4;

enum Message {
    Rows(Vec<PackedEntry>),
    Commit,
}

/// How a [`RowFeeder`] ended.
pub(crate) enum FeedOutcome {
    /// The session committed; these rows were in it.
    Committed {
        added: u64,
        rows: Vec<Vec<PackedEntry>>,
    },
    /// Nothing was committed; the rows are handed back.
    NotCommitted(Vec<PackedEntry>),
}

/// One open insert session on a helper thread. Dropping it without
/// [`commit`](RowFeeder::commit) rolls the session back (and waits for that).
pub(crate) struct RowFeeder {
    sender: Option<SyncSender<Message>>,
    helper: Option<JoinHandle<FeedOutcome>>,
    failed: Arc<AtomicBool>,
}

impl RowFeeder {
    /// Starts a helper thread with an open insert session of `container`'s index; `None` when
    /// no thread can be started (the caller then inserts its rows itself).
    pub(crate) fn start(container: &Container) -> Option<Self> {
        let (sender, receiver) = sync_channel(QUEUED_BATCHES_MAX);
        let container = container.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let helper_failed = Arc::clone(&failed);
        let helper = std::thread::Builder::new()
            .name("rsdos-index-rows".into())
            .spawn(move || insert_until_commit(&container, receiver, &helper_failed))
            .ok()?;
        Some(RowFeeder {
            sender: Some(sender),
            helper: Some(helper),
            failed,
        })
    }

    /// Queues rows for the session (blocks while the helper is [`QUEUED_BATCHES_MAX`] batches
    /// behind). `Err` hands the rows back: the helper failed and commits nothing, and the
    /// caller keeps them to insert itself.
    pub(crate) fn feed(
        &mut self,
        rows: Vec<PackedEntry>,
    ) -> std::result::Result<(), Vec<PackedEntry>> {
        if self.failed.load(Ordering::Acquire) {
            return Err(rows);
        }
        match &self.sender {
            Some(sender) => sender.send(Message::Rows(rows)).map_err(|e| match e.0 {
                Message::Rows(rows) => rows,
                Message::Commit => Vec::new(),
            }),
            None => Err(rows),
        }
    }

    /// Commits everything fed, once the helper has inserted it. `Err` only if the helper
    /// panicked (its rows are then not indexed, and the writer reports none as committed).
    pub(crate) fn commit(mut self) -> Result<FeedOutcome> {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Commit);
        }
        self.join()
    }

    fn join(&mut self) -> Result<FeedOutcome> {
        match self.helper.take() {
            Some(helper) => helper.join().map_err(|_| {
                Error::InvalidArgument("BUG: the index insert thread panicked".into())
            }),
            None => Ok(FeedOutcome::NotCommitted(Vec::new())),
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

fn insert_until_commit(
    container: &Container,
    receiver: Receiver<Message>,
    failed: &AtomicBool,
) -> FeedOutcome {
    let mut kept: Vec<Vec<PackedEntry>> = Vec::new();
    let mut session = container.index().begin_insert().ok();
    if session.is_none() {
        failed.store(true, Ordering::Release);
    }
    for message in receiver {
        match message {
            Message::Rows(rows) => {
                if let Some(open) = session.as_mut()
                    && open.insert(&rows).is_err()
                {
                    // The session is over (it rolled back); keep receiving what is queued.
                    session = None;
                    failed.store(true, Ordering::Release);
                }
                kept.push(rows);
            }
            Message::Commit => {
                if let Some(open) = session.take()
                    && let Ok(added) = open.commit()
                {
                    return FeedOutcome::Committed { added, rows: kept };
                }
                break;
            }
        }
    }
    // Not committed: the writer went away, or the session failed.
    FeedOutcome::NotCommitted(kept.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;
    use rsdos_core::{HashType, PackedLocation};

    fn row(n: u64) -> PackedEntry {
        PackedEntry {
            hashkey: HashType::Sha256.hash_hex(n.to_string().as_bytes()),
            location: PackedLocation {
                pack_id: 0,
                offset: n * 100,
                length: 100,
                size: 100,
                compressed: false,
            },
        }
    }

    fn container(dir: &tempfile::TempDir) -> Container {
        Container::init(&dir.path().join("c"), &InitOptions::default()).expect("init")
    }

    #[test]
    fn committed_rows_become_visible_and_come_back_as_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = container(&dir);
        let mut feeder = RowFeeder::start(&c).expect("start");
        for batch in 0..3 {
            let rows: Vec<PackedEntry> = (batch * 100..batch * 100 + 100).map(row).collect();
            assert!(feeder.feed(rows).is_ok());
        }
        assert_eq!(c.index().totals().expect("totals").count, 0);
        match feeder.commit().expect("commit") {
            FeedOutcome::Committed { added, rows } => {
                assert_eq!(added, 300);
                let keys: Vec<String> = rows.into_iter().flatten().map(|r| r.hashkey).collect();
                let expected: Vec<String> = (0..300).map(|n| row(n).hashkey).collect();
                assert_eq!(keys, expected);
            }
            FeedOutcome::NotCommitted(_) => panic!("not committed"),
        }
        assert_eq!(c.index().totals().expect("totals").count, 300);
    }

    /// A helper whose session fails commits nothing and hands back every row it was given,
    /// in order; the rows `feed` refused stay with the caller. Together they are all rows.
    #[test]
    fn a_failed_session_hands_every_row_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = container(&dir);
        let mut feeder = RowFeeder::start(&c).expect("start");
        let mut bad = row(150);
        bad.location.offset = u64::MAX; // not an SQL integer: the session's insert fails
        let mut all: Vec<PackedEntry> = (0..150).map(row).collect();
        all.push(bad);
        let mut refused = Vec::new();
        let mut accepted: Vec<u64> = Vec::new();
        for chunk in all
            .chunks(50)
            .map(<[PackedEntry]>::to_vec)
            .chain((0..20).map(|b| {
                ((200 + b * 10)..(210 + b * 10))
                    .map(row)
                    .collect::<Vec<_>>()
            }))
        {
            let offsets: Vec<u64> = chunk.iter().map(|r| r.location.offset).collect();
            match feeder.feed(chunk) {
                Ok(()) => accepted.extend(offsets),
                Err(back) => refused.extend(back),
            }
        }
        let mut handed_back = match feeder.commit().expect("commit") {
            FeedOutcome::NotCommitted(rows) => rows,
            FeedOutcome::Committed { .. } => panic!("a failed session committed"),
        };
        assert_eq!(c.index().totals().expect("totals").count, 0);
        // The helper hands back exactly what it accepted, in the order it was fed.
        let offsets: Vec<u64> = handed_back.iter().map(|r| r.location.offset).collect();
        assert_eq!(offsets, accepted);
        handed_back.extend(refused);
        let mut got: Vec<u64> = handed_back.iter().map(|r| r.location.offset).collect();
        got.sort_unstable();
        let mut expected: Vec<u64> = (0..150).map(|n| n * 100).collect();
        expected.push(u64::MAX);
        expected.extend((200..400).map(|n| n * 100));
        expected.sort_unstable();
        assert_eq!(got, expected);
        // The failed session holds no lock: the index is writable at once.
        assert_eq!(c.index().insert(&[row(7)]).expect("insert"), 1);
    }

    #[test]
    fn dropping_the_feeder_commits_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = container(&dir);
        let mut feeder = RowFeeder::start(&c).expect("start");
        assert!(feeder.feed((0..100).map(row).collect()).is_ok());
        drop(feeder);
        assert_eq!(c.index().totals().expect("totals").count, 0);
        assert_eq!(c.index().insert(&[row(1)]).expect("insert"), 1);
    }
}
