//! The router thread: drains the ingest channel in batches, sequences every
//! update in the topic table, encodes it once per wire format that someone
//! wants, and hands the shared frames to the interested shards.

use super::ingest::Ingested;
use super::link::{Encoded, ShardLink, ShardMsg};
use super::table::{TopicSlot, TopicTable};
use crate::metrics::Metrics;
use crate::wire::event::{encode_price, PriceKind};
use crate::wire::frame::FrameBuf;
use crate::wire::Format;
use crossbeam_channel::{select, Receiver};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub(crate) struct Router {
    pub table: Arc<TopicTable>,
    pub ingest: Receiver<Ingested>,
    /// Disconnected (never sent on) when the server shuts down.
    pub stop: Receiver<()>,
    pub shards: Vec<ShardLink>,
    pub batch_max: usize,
    pub metrics: Arc<Metrics>,
}

impl Router {
    /// Runs until the server stops or every publisher is gone. Updates already
    /// in the channel at shutdown are still delivered, so a `publish` that
    /// returned `Ok` is not lost by a clean shutdown.
    pub fn run(self) {
        let mut work = RouterWork::new(self.table.clone(), self.shards.len(), self.metrics.clone());
        let mut batch: Vec<Ingested> = Vec::with_capacity(self.batch_max);
        loop {
            let first = select! {
                recv(self.ingest) -> msg => msg.ok(),
                recv(self.stop) -> _ => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            if self.ingest.is_empty() {
                // The wake-up that brought us here may have preempted a
                // publisher in the middle of a burst (they share a core when
                // the server is pinned to one). Yielding once lets it finish,
                // so this batch holds the burst rather than one update:
                // without it, a pinned server paid about two context switches
                // per update. On a core of its own nothing else is runnable
                // and the yield returns at once.
                std::thread::yield_now();
            }
            while batch.len() < self.batch_max {
                match self.ingest.try_recv() {
                    Ok(u) => batch.push(u),
                    Err(_) => break,
                }
            }
            work.route(&mut batch, &self.shards);
            work.metrics
                .router
                .queue_depth
                .store(self.ingest.len() as u64, Relaxed);
        }
        // Deliver what was accepted before the stop, and no more: network
        // publishers may still be sending, and shutdown must end.
        let mut left = self.ingest.len();
        loop {
            while batch.len() < self.batch_max && left > 0 {
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

/// The router's state and per-batch work, apart from its thread and channels
/// (so the criterion benchmarks drive the very same code).
pub(crate) struct RouterWork {
    table: Arc<TopicTable>,
    /// The router's own index of the table, so the hot path takes no table lock.
    slots: HashMap<Box<str>, Arc<TopicSlot>>,
    fb: FrameBuf,
    outboxes: Vec<Vec<Arc<Encoded>>>,
    metrics: Arc<Metrics>,
}

impl RouterWork {
    pub(crate) fn new(table: Arc<TopicTable>, shards: usize, metrics: Arc<Metrics>) -> Self {
        RouterWork {
            table,
            slots: HashMap::new(),
            fb: FrameBuf::default(),
            outboxes: (0..shards).map(|_| Vec::new()).collect(),
            metrics,
        }
    }

    /// Sequences and encodes a batch, then sends each interested shard one
    /// message and wakes it once.
    ///
    /// Hot path: one encode per update per wanted format, never per subscriber
    /// or per shard; no lock but the topic's own slot mutex.
    pub(crate) fn route(&mut self, batch: &mut Vec<Ingested>, shards: &[ShardLink]) {
        let metrics = &self.metrics.router;
        metrics.ingested.fetch_add(batch.len() as u64, Relaxed);
        let mut encoded = 0;
        for Ingested { update: u, at } in batch.drain(..) {
            let slot = match self.slots.get(u.topic.as_str()) {
                Some(s) => s.clone(),
                None => {
                    let s = self.table.get_or_create(&u.topic);
                    self.slots.insert(u.topic.into_boxed_str(), s.clone());
                    s
                }
            };
            let (seq, interest) = slot.apply(u.timestamp_ns, &u.prices);
            let any = interest.iter().fold(0u64, |a, m| a | m);
            if any == 0 {
                continue;
            }
            let mut frames: [Option<Box<[u8]>>; Format::COUNT] = Default::default();
            for fmt in Format::ALL {
                if interest[fmt.index()] != 0 {
                    let f = encode_price(
                        &mut self.fb,
                        fmt,
                        PriceKind::Update,
                        &slot.name,
                        seq,
                        u.timestamp_ns,
                        &u.prices,
                    );
                    frames[fmt.index()] = Some(f.into());
                    encoded += 1;
                }
            }
            let enc = Arc::new(Encoded {
                topic: slot.name.clone(),
                seq,
                frames,
                ingested_at: at,
            });
            let mut bits = any;
            while bits != 0 {
                let s = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(outbox) = self.outboxes.get_mut(s) {
                    outbox.push(enc.clone());
                }
            }
        }
        metrics.encoded.fetch_add(encoded, Relaxed);
        for (outbox, link) in self.outboxes.iter_mut().zip(shards) {
            if !outbox.is_empty() {
                let msgs = std::mem::take(outbox);
                // Blocks when a shard is far behind: back-pressure reaches the
                // ingest channel and so the publishers, instead of memory growing.
                if link.tx.send(ShardMsg::Deliver(msgs)).is_ok() {
                    let _ = link.waker.wake();
                }
            }
        }
    }
}
