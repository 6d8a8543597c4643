//! The router thread: drains the ingest channel in batches, sequences every
//! update in the topic table (keeping it in the topic's history), encodes each
//! event once per wire format that someone wants, and hands the shared frames
//! to the interested shards. It also carries out clears and stale/live
//! changes, and, when `stale_after` is in use, sweeps for quiet topics.

use super::budget::{HistoryBudget, ENTRY_BYTES};
use super::epoch::Epoch;
use super::link::{Encoded, Event, Outlet};
use super::op::{IngestOp, Ingested};
use super::table::{Heard, TopicSlot, TopicTable};
use crate::metrics::Metrics;
use crate::model::event::{Encode, Price, PriceKind};
use crate::model::format::Format;
use crate::model::update::Prices;
use crossbeam_channel::{select, Receiver};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router's settings, from `Config`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouterConfig {
    pub batch_max: usize,
    /// Routers in all (`routers`): this one keeps its share of the
    /// history budget.
    pub routers: usize,
    pub history_len: usize,
    pub history_bytes: usize,
    pub stale_after: Option<Duration>,
    pub max_topics: usize,
}

impl From<&crate::config::Config> for RouterConfig {
    fn from(c: &crate::config::Config) -> Self {
        RouterConfig {
            batch_max: c.router_batch,
            routers: c.routers.max(1),
            history_len: c.history_len,
            history_bytes: c.history_bytes,
            stale_after: c.stale_after,
            max_topics: c.max_topics,
        }
    }
}

/// Whether a lookup may make a slot for a topic that has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Only a slot the topic has already.
    Existing,
    /// Made when missing, if the slot cap leaves room.
    MakeIfRoom,
}

pub(crate) struct Router {
    pub table: Arc<TopicTable>,
    pub ingest: Receiver<Ingested>,
    /// Disconnected (never sent on) when the server shuts down.
    pub stop: Receiver<()>,
    pub shards: Vec<Arc<dyn Outlet>>,
    pub config: RouterConfig,
    pub metrics: Arc<Metrics>,
    /// Cluster mode: where to ask for topics past a gap to be loaded.
    pub loads: Option<crossbeam_channel::Sender<Arc<str>>>,
    /// The event encoders (`wire::event::Encoder`; `server` chooses).
    pub encoder: Box<dyn Encode>,
}

impl Router {
    /// Runs until the server stops or every publisher is gone. Updates already
    /// in the channel at shutdown are still delivered, so a `publish` that
    /// returned `Ok` is not lost by a clean shutdown.
    pub fn run(self) {
        let batch_max = self.config.batch_max;
        let mut work = RouterWork::new(
            self.table.clone(),
            self.shards.len(),
            self.config,
            self.metrics.clone(),
            self.encoder,
        );
        if let Some(loads) = self.loads.clone() {
            work.set_loads(loads);
        }
        let mut batch: Vec<Ingested> = Vec::with_capacity(batch_max);
        let mut last_depth = 0i64;
        loop {
            // Ok(None): time to sweep for quiet topics; Err: stop.
            let first: Result<Option<Ingested>, ()> = select! {
                recv(self.ingest) -> msg => msg.map(Some).map_err(|_| ()),
                recv(self.stop) -> _ => Err(()),
                default(work.sweep_period()) => Ok(None),
            };
            let Ok(first) = first else { break };
            if let Some(first) = first {
                batch.push(first);
                if self.ingest.is_empty() {
                    // The wake-up that brought us here may have preempted a
                    // publisher in the middle of a burst (they share a core
                    // when the server is pinned to one). Yielding once lets
                    // it finish, so this batch holds the burst rather than
                    // one update: without it, a pinned server paid about two
                    // context switches per update. On a core of its own
                    // nothing else is runnable and the yield returns at once.
                    std::thread::yield_now();
                }
                while batch.len() < batch_max {
                    match self.ingest.try_recv() {
                        Ok(u) => batch.push(u),
                        Err(_) => break,
                    }
                }
            }
            work.route(&mut batch, &self.shards);
            // Each router adds the change in its own channel's depth.
            let depth = self.ingest.len() as i64;
            let change = depth - std::mem::replace(&mut last_depth, depth);
            work.metrics
                .router
                .queue_depth
                .fetch_add(change as u64, Relaxed);
        }
        // Deliver what was accepted before the stop, and no more: network
        // publishers may still be sending, and shutdown must end.
        let mut left = self.ingest.len();
        loop {
            while batch.len() < batch_max && left > 0 {
                left -= 1;
                match self.ingest.try_recv() {
                    Ok(u) => batch.push(u),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            work.route(&mut batch, &self.shards);
        }
    }
}

/// How often quiet topics are looked for, when `stale_after` is in use.
const SWEEP_PERIOD: Duration = Duration::from_millis(100);

/// The router's state and per-batch work, apart from its thread and channels
/// (so the criterion benchmarks drive the very same code).
pub(crate) struct RouterWork {
    table: Arc<TopicTable>,
    /// The router's own index of the table, so the hot path takes no table
    /// lock: a number per topic, into `list`. Hashed with seeded foldhash,
    /// not SipHash: one lookup per update (SipHash showed in its profile).
    slots: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    list: Vec<Arc<TopicSlot>>,
    /// By slot number: does the topic hold a value (in its current numbering)?
    valued: Vec<bool>,
    /// Topics that hold a value: what `max_topics` bounds.
    /// Writes each event's frame (see `model::event::Encode`).
    enc: Box<dyn Encode>,
    outboxes: Vec<Vec<Arc<Encoded>>>,
    config: RouterConfig,
    budget: HistoryBudget,
    /// History entries kept, server-wide.
    history_kept: usize,
    /// `history_kept` as last added to the metrics.
    history_reported: i64,
    /// Some topic has its own `stale_after`, or the server has one.
    sweeping: bool,
    next_sweep: Instant,
    /// Frames encoded in this batch, added to the metric once per batch.
    encoded: u64,
    metrics: Arc<Metrics>,
    /// Cluster mode: topics whose value must be loaded from the store.
    loads: Option<crossbeam_channel::Sender<Arc<str>>>,
    /// When a refused book change was last logged (at most one line a
    /// second: a feed that crosses its book must not flood the log).
    book_logged: Option<Instant>,
}

mod book;
mod cluster;
mod ops;

impl RouterWork {
    pub(crate) fn new(
        table: Arc<TopicTable>,
        shards: usize,
        config: RouterConfig,
        metrics: Arc<Metrics>,
        enc: Box<dyn Encode>,
    ) -> Self {
        metrics
            .router
            .history_len
            .store(config.history_len as u64, Relaxed);
        metrics
            .router
            .history_budget
            .store(config.history_bytes as u64, Relaxed);
        RouterWork {
            table,
            slots: HashMap::default(),
            list: Vec::new(),
            valued: Vec::new(),
            enc,
            outboxes: (0..shards).map(|_| Vec::new()).collect(),
            budget: HistoryBudget::new(config.history_bytes / config.routers.max(1)),
            history_kept: 0,
            history_reported: 0,
            sweeping: config.stale_after.is_some(),
            next_sweep: Instant::now() + SWEEP_PERIOD,
            encoded: 0,
            config,
            metrics,
            loads: None,
            book_logged: None,
        }
    }

    /// The topic table (for the benchmarks' setup).
    pub(crate) fn table(&self) -> &TopicTable {
        &self.table
    }

    /// How long the router may wait for publishers before it must sweep.
    fn sweep_period(&self) -> Duration {
        if self.sweeping {
            self.next_sweep.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        }
    }

    /// The router's number of a topic's slot, made when it is new.
    fn slot_id(&mut self, topic: &str) -> u32 {
        if let Some(id) = self.slots.get(topic) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(self.table.get_or_create(topic));
        self.valued.push(false);
        self.slots.insert(topic.into(), id);
        id
    }

    /// Most slots the router makes: a cleared topic keeps its slot for when
    /// it is published again, and this bounds how many such names pile up.
    fn slot_cap(&self) -> usize {
        self.config.max_topics.saturating_mul(2)
    }

    /// The slot of a topic an update is for, or None when the update would
    /// make one topic too many (`max_topics` counts topics holding a value).
    fn admit(&mut self, topic: &str) -> Option<u32> {
        // Counted over every router: with several, topics new at the same
        // instant on different routers can pass `max_topics` by at most
        // one per router (publishers check the same count first).
        let room = self.table.live() < self.config.max_topics;
        match self.slots.get(topic) {
            Some(&id) if room || self.valued[id as usize] => Some(id),
            Some(_) => None,
            None if room && self.list.len() < self.slot_cap() => Some(self.slot_id(topic)),
            None => None,
        }
    }

    /// The topic's slot when it has one; made for a topic that has none
    /// only with `Slot::MakeIfRoom` and under the slot cap.
    fn existing_slot(&mut self, topic: &str, make: Slot) -> Option<(u32, Arc<TopicSlot>)> {
        let id = match self.slots.get(topic) {
            Some(&id) => id,
            None if make == Slot::MakeIfRoom && self.list.len() < self.slot_cap() => {
                self.slot_id(topic)
            }
            None => return None,
        };
        Some((id, self.list[id as usize].clone()))
    }

    /// Keeps the count of topics holding a value, and the table's copy of it
    /// that publishers check before sending an update of a new topic.
    fn set_valued(&mut self, id: u32, valued: bool) {
        let was = std::mem::replace(&mut self.valued[id as usize], valued);
        if was != valued {
            self.table.add_live(valued);
        }
    }

    /// Sequences and encodes a batch, then sends each interested shard one
    /// message and wakes it once.
    ///
    /// Hot path: one encode per update per wanted format, never per subscriber
    /// or per shard; no lock but the topic's own slot mutex; the history
    /// append reuses the topic's ring once it is full.
    pub(crate) fn route(&mut self, batch: &mut Vec<Ingested>, shards: &[Arc<dyn Outlet>]) {
        let metrics = self.metrics.clone();
        let m = &metrics.router;
        let mut ingested = 0;
        for item in batch.iter_mut() {
            let at = item.at;
            // Updates, nearly all of the traffic, are read where they lie
            // (an `Ingested` is 240 bytes: moving each out costs a copy);
            // the rare other operations are taken out, leaving a no-op.
            if let IngestOp::Update(u) = &item.op {
                ingested += 1;
                let Some(id) = self.admit(&u.topic) else {
                    // Publishers check the limit first; this catches the
                    // new topics that were in flight when it was reached.
                    m.refused_topics.fetch_add(1, Relaxed);
                    continue;
                };
                self.apply_update(id, u, at);
                continue;
            }
            let op = std::mem::replace(&mut item.op, IngestOp::Unfollow(String::new()));
            ingested += self.apply_op(op, at);
        }
        batch.clear();
        if self.sweeping && Instant::now() >= self.next_sweep {
            self.sweep();
        }
        m.ingested.fetch_add(ingested, Relaxed);
        m.encoded
            .fetch_add(std::mem::take(&mut self.encoded), Relaxed);
        // Every router adds what changed in its own, so the gauges are
        // the sums over routers.
        let kept = self.history_kept as i64;
        let change = kept - std::mem::replace(&mut self.history_reported, kept);
        if change != 0 {
            m.history_entries.fetch_add(change as u64, Relaxed);
            m.history_bytes
                .fetch_add((change * ENTRY_BYTES as i64) as u64, Relaxed);
        }
        for (outbox, link) in self.outboxes.iter_mut().zip(shards) {
            if !outbox.is_empty() {
                // Blocks when a shard is far behind (see `Outlet::deliver`).
                link.deliver(std::mem::take(outbox));
            }
        }
    }

    /// Merges and sequences an update of the topic in slot `id`.
    fn apply_update(&mut self, id: u32, u: &crate::model::update::Update, at: Instant) {
        match &u.levels {
            Some(levels) => {
                let slot = self.list[id as usize].clone();
                self.apply_levels(id, &slot, u.timestamp_ns, levels, at);
            }
            None => self.apply_prices(id, u.timestamp_ns, &u.prices, at),
        }
    }

    /// Merges and sequences price fields (`ts`, `prices`) into the topic in
    /// slot `id`.
    fn apply_prices(&mut self, id: u32, ts: u64, prices: &Prices, at: Instant) {
        let slot = self.list[id as usize].clone();
        self.set_valued(id, true);
        // A trade topic keeps at least the trades its snapshot lists.
        let cap = self.config.history_len.max(slot.trades_keep);
        let applied = slot.apply(ts, prices, cap, at);
        self.history_kept -= applied.history_dropped;
        if cap > 0 {
            self.history_kept += 1;
            let kept = &mut self.history_kept;
            let place = (id, applied.generation, applied.seq);
            self.budget.added(&self.list, place, kept);
        }
        let heard = Heard {
            seq: applied.seq,
            interest: applied.interest,
            generation: applied.generation,
        };
        if applied.went_live {
            self.emit(&slot, heard, Event::Status { stale: false }, at);
        }
        let update = Event::Update {
            ts,
            prices: *prices,
            epoch: (applied.seq == 1).then_some(applied.epoch),
        };
        self.emit(&slot, heard, update, at);
    }

    /// Encodes one event once per wire format the interested shards use and
    /// queues it for each of them.
    fn emit(&mut self, slot: &TopicSlot, heard: Heard, event: Event, at: Instant) {
        let Heard {
            seq,
            interest,
            generation,
        } = heard;
        let any = interest.iter().fold(0u64, |a, m| a | m);
        if any == 0 {
            return;
        }
        let mut frames: [Option<Box<[u8]>>; Format::COUNT] = Default::default();
        let mut encoded = 0;
        for fmt in Format::ALL {
            if interest[fmt.index()] == 0 {
                continue;
            }
            let enc = &mut self.enc;
            let f = match &event {
                Event::Update { ts, prices, epoch } => {
                    let update = Price {
                        epoch: epoch.as_ref().map(Epoch::as_str),
                        ..Price::update(&slot.name, seq, *ts, prices)
                    };
                    enc.price(fmt, &update, self.table.field_names())
                }
                Event::Status { stale } => enc.status(fmt, &slot.name, *stale),
                Event::Cleared => enc.cleared(fmt, &slot.name),
                Event::Resync { ts, prices, epoch } => {
                    let snapshot = Price {
                        kind: PriceKind::Snapshot,
                        epoch: Some(epoch.as_str()),
                        ..Price::update(&slot.name, seq, *ts, prices)
                    };
                    enc.price(fmt, &snapshot, self.table.field_names())
                }
            };
            frames[fmt.index()] = Some(f.into());
            encoded += 1;
        }
        self.encoded += encoded;
        // Built where it is shared: an `Encoded` is about 300 bytes, and
        // each move of it by value was a memmove per update.
        let enc = Arc::new(Encoded {
            topic: slot.name.clone(),
            seq,
            generation,
            event,
            frames,
            ingested_at: at,
            unmerged: slot.trades_keep > 0 || slot.book,
            book: None,
            deflated: Default::default(),
        });
        self.send_out(enc, any);
    }

    /// Queues an encoded event for every shard in `shards` (bit `s`: shard `s`).
    fn send_out(&mut self, enc: Arc<Encoded>, shards: u64) {
        let mut bits = shards;
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(outbox) = self.outboxes.get_mut(s) {
                outbox.push(enc.clone());
            }
        }
    }
}
