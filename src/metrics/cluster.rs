//! The cluster link's metrics (cluster mode only): round trips to Redis and
//! what they carried, reconnects, loads, and the lag from an update's
//! numbering in Redis to its arrival here.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// Counters written by the cluster link's two threads.
#[derive(Debug, Default)]
pub(crate) struct ClusterMetrics {
    /// Cluster mode is on (the rest is rendered only then).
    pub on: AtomicBool,
    /// The publishing connection and the subscribing one are both up.
    pub up: AtomicBool,
    /// Pipelines sent by the publishing side.
    pub round_trips: AtomicU64,
    /// Updates, clears and status changes those pipelines carried.
    pub batched: AtomicU64,
    /// Connections made again after one was lost (both sides).
    pub reconnects: AtomicU64,
    /// Topics read back from Redis (subscribe, gap, reconnect).
    pub loads: AtomicU64,
    /// Updates received from Redis.
    pub received: AtomicU64,
    /// Operations Redis refused (not a lost connection): dropped, logged.
    pub refused: AtomicU64,
    /// Script calls of a batch sent again that Redis had applied before the
    /// connection was lost, and so skipped (exactly once).
    pub skipped: AtomicU64,
    /// Sum and count of the lag from numbering to receipt, in ns.
    pub lag_ns_sum: AtomicU64,
    pub lag_count: AtomicU64,
    /// The largest lag seen since the last scrape, in ns.
    pub lag_ns_max: AtomicU64,
}

impl ClusterMetrics {
    /// Appends the Prometheus text of these metrics.
    pub fn render(&self, o: &mut String) {
        if !self.on.load(Relaxed) {
            return;
        }
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Relaxed).to_string();
        one(
            "tickcast_cluster_up",
            "gauge",
            "1 while both connections to Redis are up.",
            u64::from(self.up.load(Relaxed)).to_string(),
        );
        one(
            "tickcast_cluster_round_trips_total",
            "counter",
            "Pipelines sent to Redis by the publishing side.",
            get(&self.round_trips),
        );
        one(
            "tickcast_cluster_batched_total",
            "counter",
            "Updates, clears and status changes sent in those pipelines (divide by round trips for the batch size).",
            get(&self.batched),
        );
        one(
            "tickcast_cluster_reconnects_total",
            "counter",
            "Connections to Redis made again after one was lost.",
            get(&self.reconnects),
        );
        one(
            "tickcast_cluster_loads_total",
            "counter",
            "Topics read back from Redis (first subscriber, gap, reconnect).",
            get(&self.loads),
        );
        one(
            "tickcast_cluster_refused_total",
            "counter",
            "Operations Redis refused outright (logged, dropped; a lost connection is retried instead).",
            get(&self.refused),
        );
        one(
            "tickcast_cluster_resent_skipped_total",
            "counter",
            "Partitions of a batch sent again after a lost connection that Redis had numbered already, and did not number again.",
            get(&self.skipped),
        );
        one(
            "tickcast_cluster_received_total",
            "counter",
            "Updates received from Redis.",
            get(&self.received),
        );
        let secs = |ns: u64| format!("{:.9}", ns as f64 / 1e9);
        let _ = writeln!(
            o,
            "# HELP tickcast_cluster_lag_seconds From an update's numbering in Redis to its receipt here.\n\
             # TYPE tickcast_cluster_lag_seconds summary\n\
             tickcast_cluster_lag_seconds_sum {}\ntickcast_cluster_lag_seconds_count {}",
            secs(self.lag_ns_sum.load(Relaxed)),
            self.lag_count.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP tickcast_cluster_lag_max_seconds The largest lag since the previous scrape.\n\
             # TYPE tickcast_cluster_lag_max_seconds gauge\ntickcast_cluster_lag_max_seconds {}",
            secs(self.lag_ns_max.swap(0, Relaxed))
        );
    }

    /// Counts `n` updates received `lag_ns` after they were numbered
    /// (together: a run, or one update).
    pub fn lag(&self, lag_ns: u64, n: u64) {
        self.received.fetch_add(n, Relaxed);
        self.lag_ns_sum.fetch_add(lag_ns * n, Relaxed);
        self.lag_count.fetch_add(n, Relaxed);
        self.lag_ns_max.fetch_max(lag_ns, Relaxed);
    }
}
