//! What the shard loop carries between iterations: pending work and timers.

use crate::net::timer::DeadlineQueue;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// Work left over from an iteration whose budget ran out, or found by events.
#[derive(Default)]
pub(super) struct Pending {
    pub accept: bool,
    pub channel: bool,
    /// Connections with more to read than one iteration's budget.
    pub reread: Vec<usize>,
    /// Connections with bytes to write this iteration, each listed once.
    pub dirty: Vec<usize>,
    /// Publisher connections waiting for room in the ingest queue.
    pub blocked: Vec<usize>,
    /// Topics of publishers gone away, to mark stale once the queue has room.
    pub stale_marks: Vec<Arc<str>>,
    /// Wildcard joins of connections that can take more, or withdrawals,
    /// left for the next turn.
    pub index_work: bool,
    /// Operator requests waiting for the shards' answers.
    pub admin: Vec<AdminWait>,
    /// Cluster mode: subscribes waiting for the node to follow their topics.
    pub follows: Vec<super::cluster::FollowWait>,
}

impl Pending {
    /// Work that waits on other threads (the router, other shards): the
    /// loop looks again within a millisecond.
    pub fn waits(&self) -> bool {
        !self.blocked.is_empty()
            || !self.stale_marks.is_empty()
            || self.index_work
            || !self.admin.is_empty()
            || !self.follows.is_empty()
    }
}

/// An operator request (`/admin/…`) on connection `token`, waiting for the
/// answers of `expected` shards until `deadline`.
pub(super) struct AdminWait {
    pub token: usize,
    pub conn_id: u64,
    pub request: crate::net::http::AdminRequest,
    pub rx: crossbeam_channel::Receiver<crate::admin::AdminReply>,
    pub expected: usize,
    pub replies: Vec<crate::admin::AdminReply>,
    pub deadline: Instant,
}

/// A rate-capped update's slot: (when, slab key, connection id, topic).
pub(super) type PaceTimer = Reverse<(Instant, usize, u64, Arc<str>)>;

/// A descriptor kept in reserve: at the process's descriptor limit it is
/// closed to accept one waiting connection, answer it 503 and close it, so
/// waiting clients get an answer, not a hang.
pub(super) struct SpareFd {
    pub file: Option<std::fs::File>,
    /// When a descriptor-limit warning was last logged.
    pub warned_at: Option<Instant>,
    /// Connections refused since.
    pub refused: u64,
}

impl SpareFd {
    pub fn new() -> Self {
        SpareFd {
            file: std::fs::File::open("/dev/null").ok(),
            warned_at: None,
            refused: 0,
        }
    }
}

/// Deadlines the loop wakes up for.
pub(super) struct Timers {
    pub handshakes: DeadlineQueue,
    pub closings: DeadlineQueue,
    /// When the heartbeat sweep runs next.
    pub next_sweep: Instant,
    pub shutdown: Option<Instant>,
    /// Out of descriptors with no spare to answer with: accept again then.
    pub accept_retry: Option<Instant>,
    /// When the server-wide memory budget is next checked.
    pub next_budget_check: Instant,
    /// Rate-capped updates waiting for their slot, earliest first.
    pub pace: BinaryHeap<PaceTimer>,
    /// Connections that do not read what they are sent, with more input
    /// than their per-turn share: read again at `slow_read_at`.
    pub slow_reads: Vec<usize>,
    pub slow_read_at: Option<Instant>,
}

impl Timers {
    /// The earliest of the rate-capped updates' slots and the slow reads.
    pub fn next_due(&self) -> Option<Instant> {
        let pace = self.pace.peek().map(|Reverse((at, ..))| *at);
        pace.into_iter().chain(self.slow_read_at).min()
    }
}
