//! Cluster mode: many tickcastd nodes share their topics through Redis
//! (docs/CLUSTER.md). Redis numbers every update (one `seq` and epoch per
//! topic for the whole cluster), keeps each topic's value and recent
//! history, and publishes every update to the nodes that follow the topic.
//!
//! Two threads per node make the link, each with its own connection:
//! - the writer (`writer`) takes what this node's publishers publish and
//!   sends it to Redis in pipelined batches, numbered there a partition at
//!   a time and exactly once (`numbering`); nothing is applied locally;
//! - the reader (`reader`) follows the partitions holding the topics this
//!   node's clients want (Redis pub/sub), keeps the entries of those topics,
//!   loads a topic's value and history when it is first wanted or after a
//!   gap, and feeds all of it to the router as updates already numbered.
//!
//! So every node, the publishing one included, delivers the same update
//! with the same `seq`. A shard that gets a subscribe for a topic the node
//! does not follow yet asks the reader to follow it and waits (only that
//! connection; see `net::shard::cluster`) until its value is here.

mod endpoint;
mod gather;
pub(crate) mod message;
mod numbering;
mod reader;
mod script;
pub(crate) mod store;
pub(crate) mod tail;
mod writer;

use crate::engine::op::Ingested;

/// Most updates in one operation the reader sends a router (a run).
pub(crate) const RUN_UPDATES: usize = numbering::BLOCK;
use crate::engine::table::TopicTable;
use crate::metrics::Metrics;
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// What this node follows in Redis: exact topics and prefixes, each with
/// when it was followed (a fresh one is not dropped before its subscriber
/// has had time to join).
#[derive(Debug, Default)]
pub(crate) struct Following {
    pub topics: HashMap<Arc<str>, Instant>,
    pub prefixes: HashMap<Arc<str>, Instant>,
}

impl Following {
    /// Is `topic` followed, by name or under a prefix?
    pub fn covers_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic) || self.covers_prefix(topic)
    }

    /// Is every topic under `prefix` followed?
    pub fn covers_prefix(&self, prefix: &str) -> bool {
        self.prefixes.keys().any(|p| prefix.starts_with(&**p))
    }
}

/// A shard's request to follow topics and prefixes before a subscribe runs;
/// `done` is answered once their values are in the topic table.
pub(crate) struct FollowRequest {
    pub topics: Vec<Arc<str>>,
    pub prefixes: Vec<Arc<str>>,
    pub done: Sender<()>,
}

/// What the shards and the server see of the link.
pub(crate) struct ClusterLink {
    pub following: RwLock<Following>,
    pub requests: Sender<FollowRequest>,
    /// The writer's connection to Redis is up. Shared with the publishers:
    /// while it is down they get `Unavailable` instead of waiting on a
    /// full queue. False until the first connection, so a node started
    /// while Redis is unreachable refuses rather than blocks.
    pub writer_up: Arc<AtomicBool>,
    reader_up: AtomicBool,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
}

impl ClusterLink {
    /// Both connections to Redis are up.
    pub fn up(&self) -> bool {
        self.writer_up.load(Ordering::Relaxed) && self.reader_up.load(Ordering::Relaxed)
    }

    fn set(&self, side: Side, health: Health) {
        let side = match side {
            Side::Writer => &self.writer_up,
            Side::Reader => &self.reader_up,
        };
        side.store(health == Health::Up, Ordering::Relaxed);
        self.metrics.cluster.up.store(self.up(), Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One of the link's two connections to Redis.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// Publishes this node's updates.
    Writer,
    /// Follows every node's updates.
    Reader,
}

/// Whether a side reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    Down,
}

/// The running link: its shared state and its two threads.
pub(crate) struct Cluster {
    pub link: Arc<ClusterLink>,
    threads: Vec<JoinHandle<()>>,
}

/// What the link needs from the server.
pub(crate) struct Wiring {
    pub url: String,
    /// PEM of the authority a `rediss://` Redis chains to (None: the
    /// system's roots).
    pub ca: Option<Vec<u8>>,
    pub table: Arc<TopicTable>,
    /// The router's ingest channel (numbered updates and loads go in here).
    pub router: crate::engine::inbox::Inbox,
    /// What this node's publishers publish (the writer drains it).
    pub published: Receiver<Ingested>,
    /// Topics the router found a gap in.
    pub loads: Receiver<Arc<str>>,
    pub history_len: usize,
    /// Trades a trade topic's snapshot lists (its history keeps as many).
    pub trades_snapshot: usize,
    pub metrics: Arc<Metrics>,
}

impl Cluster {
    /// Starts the writer and the reader. A Redis that cannot be reached
    /// yet is not an error: both keep trying, and the node serves what it
    /// holds meanwhile (`/healthz` says degraded).
    pub fn start(w: Wiring) -> crate::error::Result<Cluster> {
        let endpoint = endpoint::Endpoint::parse(&w.url, w.ca).map_err(|e| {
            crate::error::ConfigError::OutOfRange {
                key: "redis",
                expected: "redis://HOST:PORT (rediss:// for TLS), or redis+cluster://HOST:PORT,HOST:PORT,...",
                got: format!("{} ({e})", w.url),
            }
        })?;
        let (requests, request_rx) = bounded(1024);
        w.metrics.cluster.on.store(true, Ordering::Relaxed);
        let link = Arc::new(ClusterLink {
            following: RwLock::default(),
            requests,
            writer_up: Arc::new(AtomicBool::new(false)),
            reader_up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            metrics: w.metrics.clone(),
        });
        let writer = writer::Writer {
            id: format!("{:016x}", rand::random::<u64>()),
            link: link.clone(),
            endpoint: endpoint.clone(),
            input: w.published,
            history_len: w.history_len,
            trades_snapshot: w.trades_snapshot,
            fields: w.table.field_names().into(),
        };
        let reader = reader::Reader {
            link: link.clone(),
            endpoint,
            table: w.table,
            router: w.router,
            requests: request_rx,
            loads: w.loads,
            history_len: w.history_len,
            trades_snapshot: w.trades_snapshot,
        };
        let threads = vec![
            std::thread::Builder::new()
                .name("tickcast-cluster-writer".into())
                .spawn(move || writer.run())?,
            std::thread::Builder::new()
                .name("tickcast-cluster-reader".into())
                .spawn(move || reader.run())?,
        ];
        Ok(Cluster { link, threads })
    }

    /// Sends what publishers queued (for a bounded time), then stops both
    /// threads. The router must still run: the reader feeds it until then.
    pub fn stop(&mut self) {
        self.link.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A server that failed to start drops its link: both threads end.
impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wall clock in ns since the Unix epoch (for the lag between nodes).
fn wall_ns() -> u64 {
    crate::model::update::now_ns()
}
