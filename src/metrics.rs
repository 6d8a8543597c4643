//! Counters for `/metrics`, in Prometheus text format.
//!
//! Hot-path counters live per shard (each shard writes only its own, with
//! relaxed atomics, on its own cache lines) and are summed when scraped, so a
//! scrape never slows delivery and shards never contend on a counter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a connection ended; the `reason` label of `tickcast_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (close frame or TCP close).
    Client,
    /// Plain HTTP request answered (health check, 404, refused upgrade...).
    Http,
    /// The client broke the WebSocket protocol (1002, 1003, 1007, 1009).
    Protocol,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// Too far behind: outbound queue over its limit.
    SlowConsumer,
    /// Refused at accept: over the connection limit.
    Limit,
    /// The server is shutting down.
    Shutdown,
    /// A socket error.
    Io,
    /// No data or pong within the idle timeout.
    IdleTimeout,
    /// Its token expired, it flooded commands past the rate limit, or an
    /// operator closed it.
    Policy,
    /// Handling it hit a bug in tickcast (a caught panic): closed with 1011.
    Internal,
}

impl CloseReason {
    /// How many reasons there are: the length of the per-reason counters.
    pub(crate) const COUNT: usize = 11;
    const ALL: [CloseReason; Self::COUNT] = [
        CloseReason::Client,
        CloseReason::Http,
        CloseReason::Protocol,
        CloseReason::HandshakeTimeout,
        CloseReason::SlowConsumer,
        CloseReason::Limit,
        CloseReason::Shutdown,
        CloseReason::Io,
        CloseReason::IdleTimeout,
        CloseReason::Policy,
        CloseReason::Internal,
    ];

    /// Its place in the per-reason counters.
    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Http => "http",
            CloseReason::Protocol => "protocol_error",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Limit => "limit",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Io => "io_error",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Policy => "policy",
            CloseReason::Internal => "internal_error",
        }
    }
}

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// One shard's counters. Aligned so two shards never share a cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct ShardMetrics {
    pub(crate) accepted: AtomicU64,
    pub(crate) closed: [AtomicU64; CloseReason::COUNT],
    pub(crate) open: AtomicI64,
    pub(crate) subscriptions: AtomicI64,
    pub(crate) frames: AtomicU64,
    /// Sessions that negotiated permessage-deflate.
    pub(crate) deflate_sessions: AtomicU64,
    /// Event frames compressed (once per event, format and depth class,
    /// by whichever shard needed it first).
    pub(crate) deflate_compressions: AtomicU64,
    /// Event frames queued compressed.
    pub(crate) deflated_frames: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) conflated: AtomicU64,
    pub(crate) queued_bytes: AtomicI64,
    /// Connections answered 503 because the process was out of descriptors.
    pub(crate) fd_refused: AtomicU64,
    /// Updates from network publishers refused one by one (bad or over `max_topics`).
    pub(crate) publish_refused: AtomicU64,
    pub(crate) latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    pub(crate) latency_sum_ns: AtomicU64,
    /// The shard index's topic entries and memberships, set each loop turn.
    pub(crate) index_entries: AtomicU64,
    pub(crate) memberships: AtomicU64,
}

/// What the memory estimate in `/metrics` counts per item: measured sizes
/// (heap and allocator overhead included, rounded up) on x86-64 Linux.
pub(crate) mod sizes {
    /// An open connection's state (its slab entry, the subscriptions it
    /// asked for, buffers while in use): 1,484-1,553 bytes of RSS per idle
    /// connection with ten topics each (BENCHMARKS.md, "Issue 29"), less
    /// its memberships and its share of index entries, rounded up. (5 KiB
    /// until the connection lost tungstenite's context and read buffer.)
    pub const CONNECTION: u64 = 1280;
    /// One subscriber of one topic in a shard index, with vector slack.
    pub const MEMBERSHIP: u64 = 24;
    /// A topic's entry in a shard index (map and ordered-name entries).
    pub const INDEX_ENTRY: u64 = 128;
    /// A topic in the topic table, history aside.
    pub const TOPIC: u64 = 360;
    /// An operation waiting in an ingest channel: its slot, as large as
    /// the largest operation (an update, inline); `engine::op`'s tests pin
    /// it to `size_of::<Ingested>()`.
    pub const INGEST_OP: u64 = 240;
}

impl Metrics {
    /// The parts of the `/metrics` memory estimate that clients account
    /// for: their connections, what they hold (queues, held-back updates),
    /// and their index entries and memberships.
    pub(crate) fn client_memory(&self) -> [(&'static str, u64); 3] {
        // Summed over shards, then clamped: one shard's count may dip below
        // zero between its increments and another's decrements.
        let gauge =
            |f: fn(&ShardMetrics) -> i64| self.shards.iter().map(f).sum::<i64>().max(0) as u64;
        let index = self.sum(|s| s.index_entries.load(Relaxed)) * sizes::INDEX_ENTRY
            + self.sum(|s| s.memberships.load(Relaxed)) * sizes::MEMBERSHIP;
        [
            (
                "connections",
                gauge(|s| s.open.load(Relaxed)) * sizes::CONNECTION,
            ),
            ("outbound", gauge(|s| s.queued_bytes.load(Relaxed))),
            ("index", index),
        ]
    }

    /// Their sum. It falls when clients leave, so a watcher can tell when
    /// memory may be handed back.
    pub(crate) fn clients_estimate(&self) -> u64 {
        self.client_memory().iter().map(|(_, v)| v).sum()
    }

    /// What all connections hold together (queues, held-back updates).
    pub(crate) fn queued_total(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| s.queued_bytes.load(Relaxed))
            .sum()
    }
}

impl ShardMetrics {
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
        self.open.fetch_sub(1, Relaxed);
    }

    /// Records the time from ingest of the oldest frame in a write to the write.
    pub(crate) fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[i].fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }
}

/// Server-wide counters written by the router.
#[derive(Default)]
pub struct RouterMetrics {
    pub(crate) ingested: AtomicU64,
    /// Updates of a new topic dropped because the server held `max_topics`.
    pub(crate) refused_topics: AtomicU64,
    /// Book changes refused because they would cross the book (or make a
    /// side too deep); the publisher learns only from this and the log.
    pub(crate) refused_books: AtomicU64,
    pub(crate) encoded: AtomicU64,
    pub(crate) queue_depth: AtomicU64,
    pub(crate) history_entries: AtomicU64,
    pub(crate) history_bytes: AtomicU64,
    /// The configured `history_len` and `history_bytes`, set at start.
    pub(crate) history_len: AtomicU64,
    pub(crate) history_budget: AtomicU64,
}

/// Everything `/metrics` shows.
pub struct Metrics {
    pub(crate) shards: Vec<ShardMetrics>,
    pub(crate) router: RouterMetrics,
    pub(crate) cluster: ClusterMetrics,
    /// The `max_total_outbound_bytes` in force (the shards set it when they
    /// check the budget), so an alert can compare the queued bytes with it.
    pub(crate) outbound_budget: AtomicU64,
}

mod cluster;
mod render;
pub(crate) use cluster::ClusterMetrics;

impl Metrics {
    pub(crate) fn new(shards: usize) -> Self {
        Metrics {
            shards: (0..shards).map(|_| ShardMetrics::default()).collect(),
            router: RouterMetrics::default(),
            cluster: ClusterMetrics::default(),
            outbound_budget: AtomicU64::new(0),
        }
    }

    fn sum(&self, f: impl Fn(&ShardMetrics) -> u64) -> u64 {
        self.shards.iter().map(f).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_reason_counts_in_its_own_slot_under_its_own_label() {
        let m = ShardMetrics::default();
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            m.closed(*r);
            assert_eq!(m.closed[i].load(Relaxed), 1, "{r:?}");
        }
        let mut labels: Vec<&str> = CloseReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), CloseReason::COUNT);
    }
}
