//! The network side: shard threads with their event loops, connections and
//! their outbound queues, the byte transport (plain or TLS), and HTTP.
//!
//! It uses the engine (the topic table, the link types, the publisher handle)
//! and the wire formats; the engine never uses it.

pub(crate) mod admit;
pub(crate) mod allowance;
pub(crate) mod backlog;
pub(crate) mod byte_budget;
pub(crate) mod cert_check;
pub(crate) mod conn;
pub(crate) mod flood_memory;
pub(crate) mod heartbeat;
pub(crate) mod http;
pub(crate) mod index;
pub(crate) mod live;
pub(crate) mod mailbox;
pub(crate) mod memory_budget;
pub(crate) mod merged;
pub mod outbound;
pub(crate) mod pace_group;
pub(crate) mod pacing;
pub(crate) mod publishing;
pub(crate) mod shard;
pub(crate) mod snapshot_frames;
pub(crate) mod snapshot_room;
pub(crate) mod subscriptions;
pub(crate) mod timer;
pub(crate) mod topic_map;
pub(crate) mod transport;
pub(crate) mod work;

use crate::config::source::ConfigSource;
use crate::metrics::Metrics;
use live::Live;
use mailbox::ShardLink;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

/// State every shard of one server reads.
pub(crate) struct Shared {
    pub shutting_down: AtomicBool,
    /// A shard or router thread died of a bug (a panic outside any one
    /// connection's handling): `/healthz` says 503 and `tickcastd` exits
    /// non-zero so its supervisor restarts it. Never a silent dead shard.
    pub failed: AtomicBool,
    /// Open connections across all shards (for the connection limit).
    pub connections: AtomicUsize,
    /// Per-connection compression contexts held (`[compression] per_connection`).
    pub deflate_contexts: Arc<AtomicUsize>,
    /// Addresses recently closed for flooding commands: their new
    /// connections start with a few commands, not a second's worth.
    pub floods: flood_memory::FloodMemory,
    pub metrics: Arc<Metrics>,
    /// The settings in force. A shard reads its own copy (sent at each
    /// reload); this one is for the next reload to start from, and its lock
    /// keeps two reloads from interleaving.
    pub live: parking_lot::Mutex<Arc<Live>>,
    /// Where `POST /admin/reload` reads the configuration (the daemon's file).
    pub source: parking_lot::Mutex<Option<Arc<ConfigSource>>>,
    /// Every shard, for handing out reloaded settings.
    pub shards: Vec<ShardLink>,
    /// Cluster mode: the link to Redis.
    pub cluster: Option<Arc<crate::cluster::ClusterLink>>,
    /// Who subscribes to what, server-wide (interest events).
    pub interest: Arc<crate::engine::interest::InterestBook>,
    /// The selectors wanted now (told to a `/publish` connection that opens).
    pub wanted: crate::engine::interest::Active,
    /// Reloads the settings from `source` (`reload::from_source`; `server`
    /// sets it, so the network side never imports the reload code).
    pub reload: fn(&Shared) -> crate::error::Result<crate::config::source::Reloaded>,
}

/// What every connection, and every subscriber of every topic, costs:
/// each byte here is multiplied by the connections (10 KB at 10,000). A
/// struct that grows fails this test, so the growth is a decision: change
/// the number here and say why in the commit.
#[cfg(all(test, target_pointer_width = "64"))]
mod sizes {
    use std::mem::size_of;

    #[test]
    fn the_per_connection_structs_keep_their_sizes() {
        let sizes = [
            // 376: the inbound frame reader (its partial frame's buffer,
            // freed between frames) is kept inline instead of a boxed
            // tungstenite context of about 400 B with its read buffer; and
            // Outbound's batch pointer.
            ("Conn", size_of::<crate::net::conn::Conn>(), 376),
            // 88: a batch session's staged events (boxed, None for most).
            ("Outbound", size_of::<crate::net::outbound::Outbound>(), 88),
            ("Backlog", size_of::<crate::net::backlog::Backlog>(), 40),
            (
                "Subscriptions",
                size_of::<crate::net::subscriptions::Subscriptions>(),
                64,
            ),
            (
                "Transport",
                size_of::<crate::net::transport::Transport>(),
                24,
            ),
            // One per subscriber per topic.
            ("Member", size_of::<crate::net::index::Member>(), 16),
            // One per topic a shard delivers. 48: its rate-cap groups
            // (a pointer, null for a topic nobody receives capped); 56:
            // its slot in the topic table, for withdrawing interest.
            ("LocalTopic", size_of::<crate::net::index::LocalTopic>(), 56),
        ];
        for (name, now, pinned) in sizes {
            assert_eq!(now, pinned, "{name} is {now} bytes, pinned at {pinned}");
        }
    }
}
