//! The topic table, one per server: registry of topics, last-value cache,
//! sequence numbers, and which shards want which topics. (Each shard's own
//! view, which of its connections want a topic, is `net::index::ShardIndex`.)
//!
//! The router thread is the only writer of values and sequence numbers, so they
//! are gap-free per topic. Shards lock a topic's slot only when a client
//! subscribes: they set their interest bit and copy the snapshot under the same
//! lock, which orders the snapshot exactly against the router's updates.

use super::epoch::Epoch;
use super::history::History;
use crate::model::book::{is_book, Book};
use crate::model::format::Format;
use crate::model::update::Prices;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The latest merged value of a topic, with the sequence number of the last
/// update merged into it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Sequence number of the newest update in this value (1 for the first).
    pub seq: u64,
    /// Publisher timestamp of that update, ns since the Unix epoch.
    pub ts: u64,
    /// Every field ever published, each at its latest value.
    pub prices: Prices,
    /// The numbering `seq` belongs to; a new one after a restart or a clear.
    pub epoch: Epoch,
    /// The topic's publisher went away or it has not changed for its
    /// `stale_after`: the value may be out of date.
    pub stale: bool,
}

/// Which shards want a topic: bit `s` of `masks[f]` says shard `s` has
/// subscribers that want wire format `f`.
pub type ShardMask = [u64; Format::COUNT];

pub(crate) use crate::model::resume::{ResumeFrom, SinceMap};

pub(crate) use book::{BookMove, BookView};
pub(crate) use outcome::{Applied, Heard, Joined};

/// One topic's shared state.
#[derive(Debug)]
pub struct TopicSlot {
    /// The topic's name, shared with every frame and index entry for it.
    pub name: Arc<str>,
    state: Mutex<SlotState>,
    /// Copies of the history's oldest seq and of the clear count, written by
    /// the router under the lock, read without it by the history budget.
    history_first: AtomicU64,
    generation: AtomicU16,
    /// A trade topic (`trades`): how many trades its snapshot lists; 0 for
    /// any other topic.
    pub trades_keep: usize,
    /// An order-book topic (`book`).
    pub book: bool,
}

#[derive(Debug)]
struct SlotState {
    value: Snapshot,
    interest: ShardMask,
    history: History,
    /// When the value last changed (for `stale_after`).
    changed_at: Instant,
    /// This topic's own `stale_after`, when a publisher set one.
    stale_after: Option<Duration>,
    /// Clears so far, wrapping (see `Joined::generation`).
    generation: u16,
    /// Where the admin listing last measured the update rate from (`admin`).
    rate_mark: (Instant, u64),
    /// Cluster mode: the value is the cluster's, kept up to date from it
    /// (see `cluster`). Always false outside cluster mode.
    synced: bool,
    /// An order-book topic's book (`book`); None for any other topic.
    book: Option<Box<Book>>,
    /// An order-book topic's top levels after its last change, and the
    /// depth they were taken to: the next change's `before` when the depth
    /// is the same, so a change walks the book once, not twice.
    book_view: Option<(usize, Arc<BookView>)>,
}

impl TopicSlot {
    fn new(name: Arc<str>, interest: ShardMask, trades_keep: usize) -> TopicSlot {
        let book = is_book(&name);
        TopicSlot {
            trades_keep,
            book,
            name,
            history_first: AtomicU64::new(u64::MAX),
            generation: AtomicU16::new(0),
            state: Mutex::new(SlotState {
                value: Snapshot::default(),
                interest,
                history: History::default(),
                changed_at: Instant::now(),
                stale_after: None,
                generation: 0,
                rate_mark: (Instant::now(), 0),
                synced: false,
                book: book.then(Box::default),
                book_view: None,
            }),
        }
    }

    /// Router only: merges an update that entered the ingest channel `at`,
    /// assigns the next sequence number, keeps it in the history (at most
    /// `history_cap` per topic), and says which shards to deliver it to.
    /// Hot path: no clock read (`at` was taken by the publisher).
    pub(crate) fn apply(
        &self,
        ts: u64,
        prices: &Prices,
        history_cap: usize,
        at: Instant,
    ) -> Applied {
        let mut st = self.state.lock();
        st.value.seq += 1;
        st.value.ts = ts;
        st.value.prices.merge(prices);
        st.changed_at = at;
        let went_live = std::mem::replace(&mut st.value.stale, false);
        let seq = st.value.seq;
        let history_dropped = st.history.push(seq, ts, prices, history_cap);
        self.history_first.store(st.history.first(), Relaxed);
        Applied {
            seq,
            interest: st.interest,
            generation: st.generation,
            went_live,
            epoch: st.value.epoch,
            history_dropped,
        }
    }

    /// Router only: forgets the value and the history and starts a new
    /// epoch and generation; the next update is `seq` 1. Returns who must
    /// hear of it and the history entries freed.
    pub(crate) fn clear(&self) -> (Heard, usize) {
        let mut st = self.state.lock();
        st.value = Snapshot::default();
        if let Some(b) = &mut st.book {
            **b = Book::default();
        }
        st.book_view = None;
        st.stale_after = None;
        st.generation = st.generation.wrapping_add(1);
        let freed = st.history.clear();
        self.history_first.store(u64::MAX, Relaxed);
        self.generation.store(st.generation, Relaxed);
        (Heard::of(&st), freed)
    }

    /// Router only: server-wide eviction of history up to `seq`, in the
    /// numbering `generation` (an entry of a numbering since cleared is gone).
    pub(crate) fn evict_history_through(&self, generation: u16, seq: u64) -> usize {
        let mut st = self.state.lock();
        if st.generation != generation {
            return 0;
        }
        let n = st.history.evict_through(seq);
        self.history_first.store(st.history.first(), Relaxed);
        n
    }

    /// Is history entry `seq` of numbering `generation` still kept? Without
    /// the slot lock: the router calls it for thousands of entries at once.
    pub(crate) fn history_holds(&self, generation: u16, seq: u64) -> bool {
        self.generation.load(Relaxed) == generation && self.history_first.load(Relaxed) <= seq
    }

    /// Shard only: marks interest of `shard` in format `fmt` and returns the
    /// snapshot taken under the same lock, with the updates a resuming
    /// client missed when the history still holds all of them in its epoch.
    pub(crate) fn join(&self, shard: usize, fmt: Format, since: Option<&ResumeFrom>) -> Joined {
        let mut st = self.state.lock();
        st.interest[fmt.index()] |= 1 << shard;
        // A book is always sent whole: its history keeps nothing.
        let replay = since
            .filter(|r| st.value.seq > 0 && r.epoch == st.value.epoch.as_str() && !self.book)
            .and_then(|r| st.history.since(r.seq, st.value.seq));
        let trades =
            (self.trades_keep > 0 && replay.is_none()).then(|| st.history.last(self.trades_keep));
        Joined {
            snapshot: st.value,
            replay,
            generation: st.generation,
            trades,
            book: st.book.as_deref().map(BookView::of),
        }
    }

    /// Shard only: withdraws the interest of `shard` in format `fmt`.
    pub(crate) fn leave(&self, shard: usize, fmt: Format) {
        self.state.lock().interest[fmt.index()] &= !(1 << shard);
    }

    /// The current value.
    pub fn snapshot(&self) -> Snapshot {
        self.state.lock().value
    }
}

#[derive(Default)]
struct TableInner {
    /// Ordered so prefix queries (`topics`, wildcard subscribe) are range scans.
    topics: BTreeMap<Arc<str>, Arc<TopicSlot>>,
    /// Interest in topics that do not exist yet, by exact name; moved into the
    /// slot when the router creates it.
    pending_exact: HashMap<Arc<str>, ShardMask>,
    /// Interest of shards in every topic under a prefix, present or future.
    prefixes: HashMap<Arc<str>, ShardMask>,
}

/// The registry shared by the router (creates topics, writes values) and the
/// shards (read snapshots, register interest).
pub struct TopicTable {
    inner: RwLock<TableInner>,
    /// Topics holding a value, as the router last counted them.
    live: AtomicUsize,
    /// The server's `max_topics` (unbounded until the server sets it).
    max_topics: AtomicUsize,
    /// Trades a trade topic's snapshot lists (`trades`).
    trades_snapshot: AtomicUsize,
    /// The server's extra fields (`[fields] extra`), set once at start:
    /// encoders name them, publishers look them up.
    field_names: std::sync::OnceLock<Box<[Box<str>]>>,
    /// The book depth classes subscribers have asked for (bit `c`: class
    /// `c` of `book::DEPTHS`), so the router encodes those only (`book`).
    book_classes: AtomicU8,
}

impl std::fmt::Debug for TopicTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicTable")
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl Default for TopicTable {
    fn default() -> Self {
        TopicTable {
            inner: RwLock::default(),
            live: AtomicUsize::new(0),
            max_topics: AtomicUsize::new(usize::MAX),
            trades_snapshot: AtomicUsize::new(trades::DEFAULT_SNAPSHOT),
            book_classes: AtomicU8::new(0),
            field_names: std::sync::OnceLock::new(),
        }
    }
}

impl TopicTable {
    /// A table that holds at most `max` topics with a value.
    pub(crate) fn with_max_topics(max: usize) -> Self {
        let t = TopicTable::default();
        t.max_topics.store(max, Relaxed);
        t
    }

    /// Sets the names of the server's extra fields (once, at start).
    pub(crate) fn set_field_names(&self, names: &[String]) {
        let names: Box<[Box<str>]> = names.iter().map(|n| n.as_str().into()).collect();
        let _ = self.field_names.set(names);
    }

    /// The names of the server's extra fields, in index order.
    pub(crate) fn field_names(&self) -> &[Box<str>] {
        self.field_names.get().map_or(&[], |n| n)
    }

    /// Router only: one more (or one fewer) topic holds a value. Every
    /// router counts its own topics into this one number.
    pub(crate) fn add_live(&self, more: bool) {
        match more {
            true => self.live.fetch_add(1, Relaxed),
            false => self.live.fetch_sub(1, Relaxed),
        };
    }

    /// Topics holding a value.
    pub fn live(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// Publishers' check before sending an update: refused only when the
    /// table is at `max_topics` and the topic holds no value. Below the
    /// limit it costs one atomic load (no lock), so the publish path stays
    /// lock-free; at the limit, one lookup.
    pub(crate) fn admits(&self, topic: &str) -> Result<(), crate::error::Error> {
        let max = self.max_topics.load(Relaxed);
        if self.live.load(Relaxed) < max || self.snapshot(topic).is_some() {
            return Ok(());
        }
        Err(crate::error::Error::TooManyTopics { max })
    }
    /// Router only: finds or creates a topic. A new slot starts with the interest
    /// of every shard that subscribed to its name or to a prefix of it, taken
    /// under the table lock so no subscription can fall between the two.
    pub(crate) fn get_or_create(&self, name: &str) -> Arc<TopicSlot> {
        if let Some(slot) = self.inner.read().topics.get(name) {
            return slot.clone();
        }
        let mut inner = self.inner.write();
        if let Some(slot) = inner.topics.get(name) {
            return slot.clone();
        }
        let name: Arc<str> = name.into();
        let mut interest = inner.pending_exact.remove(&name).unwrap_or_default();
        for (prefix, masks) in &inner.prefixes {
            if name.starts_with(&**prefix) {
                for (dst, src) in interest.iter_mut().zip(masks) {
                    *dst |= src;
                }
            }
        }
        let keep = match is_trades(&name) {
            true => self.trades_snapshot.load(Relaxed).max(1),
            false => 0,
        };
        let slot = Arc::new(TopicSlot::new(name.clone(), interest, keep));
        inner.topics.insert(name, slot.clone());
        slot
    }

    /// Shard only: registers `shard`'s interest in an exact topic. Returns the
    /// slot and snapshot if the topic exists; otherwise the interest is parked
    /// until the router creates the topic.
    pub(crate) fn join_exact(
        &self,
        topic: &Arc<str>,
        shard: usize,
        fmt: Format,
        since: Option<&ResumeFrom>,
    ) -> Option<(Arc<TopicSlot>, Joined)> {
        {
            let inner = self.inner.read();
            if let Some(slot) = inner.topics.get(topic) {
                return Some((slot.clone(), slot.join(shard, fmt, since)));
            }
        }
        let mut inner = self.inner.write();
        if let Some(slot) = inner.topics.get(topic) {
            return Some((slot.clone(), slot.join(shard, fmt, since)));
        }
        inner.pending_exact.entry(topic.clone()).or_default()[fmt.index()] |= 1 << shard;
        None
    }

    /// Shard only: withdraws interest in an exact topic (existing or parked).
    pub(crate) fn leave_exact(&self, topic: &str, shard: usize, fmt: Format) {
        let existing = self.inner.read().topics.get(topic).cloned();
        match existing {
            Some(slot) => slot.leave(shard, fmt),
            None => {
                let mut inner = self.inner.write();
                if let Some(slot) = inner.topics.get(topic).cloned() {
                    slot.leave(shard, fmt);
                } else if let Some(masks) = inner.pending_exact.get_mut(topic) {
                    masks[fmt.index()] &= !(1 << shard);
                    if masks.iter().all(|m| *m == 0) {
                        inner.pending_exact.remove(topic);
                    }
                }
            }
        }
    }

    /// Shard only: registers `shard`'s interest in every topic under `prefix`
    /// that the router creates from now on. The existing ones are joined a
    /// chunk at a time with [`TopicTable::join_under`]: a topic created in
    /// between inherits this interest, so none falls between the two.
    pub(crate) fn register_prefix(&self, prefix: &Arc<str>, shard: usize, fmt: Format) {
        let mut inner = self.inner.write();
        inner.prefixes.entry(prefix.clone()).or_default()[fmt.index()] |= 1 << shard;
    }

    /// Shard only: joins (interest and snapshot, as `join_exact` does) at
    /// most `limit` existing topics under `prefix` whose names come after
    /// `after`, in name order. Holds the read lock for one chunk only.
    pub(crate) fn join_under(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        shard: usize,
        fmt: Format,
    ) -> Vec<(Arc<TopicSlot>, Joined)> {
        let inner = self.inner.read();
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Included(prefix),
        };
        inner
            .topics
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .take(limit)
            .map(|(_, slot)| (slot.clone(), slot.join(shard, fmt, None)))
            .collect()
    }

    /// Shard only: joins one existing topic (no interest is parked for a
    /// topic that does not exist: a wildcard's covers its creation).
    pub(crate) fn join_existing(
        &self,
        topic: &str,
        shard: usize,
        fmt: Format,
        since: Option<&ResumeFrom>,
    ) -> Option<(Arc<TopicSlot>, Joined)> {
        let slot = self.inner.read().topics.get(topic).cloned()?;
        let joined = slot.join(shard, fmt, since);
        Some((slot, joined))
    }

    /// Shard only: withdraws `shard`'s interest in future topics under `prefix`.
    /// Interest in existing topics is withdrawn topic by topic by the shard.
    pub(crate) fn leave_prefix(&self, prefix: &str, shard: usize, fmt: Format) {
        let mut inner = self.inner.write();
        if let Some(masks) = inner.prefixes.get_mut(prefix) {
            masks[fmt.index()] &= !(1 << shard);
            if masks.iter().all(|m| *m == 0) {
                inner.prefixes.remove(prefix);
            }
        }
    }

    /// Names of the topics that have a value, in order, optionally under a prefix,
    /// at most `limit` of them.
    pub fn list(&self, prefix: &str, limit: usize) -> Vec<Arc<str>> {
        let inner = self.inner.read();
        prefix_range(&inner.topics, prefix)
            .filter(|slot| slot.snapshot().seq > 0)
            .take(limit)
            .map(|slot| slot.name.clone())
            .collect()
    }

    /// The current value of one topic, if it has one. (The router makes a
    /// slot just before merging its first update; until then it has none.)
    pub fn snapshot(&self, topic: &str) -> Option<Snapshot> {
        let slot = self.inner.read().topics.get(topic).cloned()?;
        Some(slot.snapshot()).filter(|s| s.seq > 0)
    }
}

fn prefix_range<'a>(
    topics: &'a BTreeMap<Arc<str>, Arc<TopicSlot>>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a Arc<TopicSlot>> + 'a {
    topics
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(name, _)| name.starts_with(prefix))
        .map(|(_, slot)| slot)
}

mod admin;
mod book;
mod cluster;
mod outcome;
mod stale;
mod trades;
pub(crate) use cluster::Fit;
pub(crate) use trades::is_trades;
#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
