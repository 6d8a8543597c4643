//! What goes to a router: the operations publishers, the shards and the
//! cluster link send (`IngestOp`), each stamped with when it entered its
//! channel (`Ingested`).

use crate::model::liveness::Liveness;
use crate::model::update::Update;
use crossbeam_channel::Sender;
use std::time::{Duration, Instant};

/// What a publisher asks of the router.
#[derive(Debug, Clone)]
pub(crate) enum IngestOp {
    /// Merge and sequence an update.
    Update(Update),
    /// Forget a topic's value and history; its next update starts a new epoch.
    Clear(String),
    /// Mark a topic stale or live again.
    Stale(String, Liveness),
    /// Set a topic's own `stale_after` (None: the server's).
    StaleAfter(String, Option<Duration>),
    /// Cluster mode: an update the cluster's store has numbered.
    Numbered(Box<Numbered>),
    /// Cluster mode: consecutive updates of one topic the store numbered
    /// together (one operation for a run of them).
    Run(Box<NumberedRun>),
    /// Cluster mode: a topic's value and recent history as the store holds
    /// them (no value: the store has none, the topic is empty).
    Load(Box<Loaded>),
    /// Cluster mode: the topic is no longer followed (no subscriber here).
    Unfollow(String),
    /// Cluster mode: answered once everything sent before it is applied.
    Barrier(Sender<()>),
}

impl IngestOp {
    /// The topic it is for (a barrier is for none).
    pub(crate) fn topic(&self) -> Option<&str> {
        match self {
            IngestOp::Update(u) => Some(&u.topic),
            IngestOp::Numbered(n) => Some(&n.update.topic),
            IngestOp::Run(r) => Some(&r.topic),
            IngestOp::Load(l) => Some(&l.topic),
            IngestOp::Clear(t)
            | IngestOp::Stale(t, _)
            | IngestOp::StaleAfter(t, _)
            | IngestOp::Unfollow(t) => Some(t),
            IngestOp::Barrier(_) => None,
        }
    }
}

/// An update with its number in the cluster's store.
#[derive(Debug, Clone)]
pub(crate) struct Numbered {
    pub update: Update,
    pub epoch: crate::engine::epoch::Epoch,
    pub seq: u64,
}

/// Updates of one topic numbered `first`, `first + 1`, ... in one epoch:
/// what the cluster's reader makes of a run (`cluster::message`). One
/// operation, one topic name and one allocation for the run, where an
/// update each cost the reader a name, a box and a trip through the
/// router's channel (BENCHMARKS.md, "Issue 24", session 22).
#[derive(Debug, Clone)]
pub(crate) struct NumberedRun {
    pub topic: String,
    pub epoch: crate::engine::epoch::Epoch,
    /// The `seq` of the first update.
    pub first: u64,
    /// Each update's `ts` and prices, in order.
    pub updates: Vec<(u64, crate::model::update::Prices)>,
}

/// A topic as the cluster's store holds it.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub topic: String,
    pub value: Option<crate::engine::table::Snapshot>,
    /// Consecutive, ending at the value's `seq`.
    pub history: Vec<crate::engine::history::Past>,
    /// The topic's own `stale_after` in the store (None: the server's).
    pub stale_after: Option<Duration>,
    /// Of an order-book topic with a value: its whole book (a replacing
    /// change).
    pub book: Option<crate::model::book::Levels>,
}

/// An operation on its way to the router, stamped with when it entered the
/// channel (for the delivery-latency histogram).
pub(crate) struct Ingested {
    pub op: IngestOp,
    pub at: Instant,
}

impl Ingested {
    pub fn update(update: Update) -> Ingested {
        Ingested {
            op: IngestOp::Update(update),
            at: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_estimate_knows_the_size_of_an_ingest_slot() {
        assert_eq!(
            std::mem::size_of::<super::Ingested>() as u64,
            crate::metrics::sizes::INGEST_OP
        );
    }
}
