//! The network side: shard threads with their event loops, connections and
//! their outbound queues, the byte transport (plain or TLS), and HTTP.
//!
//! It uses the engine (the topic table, the link types, the publisher handle)
//! and the wire formats; the engine never uses it.

pub(crate) mod allowance;
pub(crate) mod backlog;
pub(crate) mod conn;
pub(crate) mod http;
pub(crate) mod index;
pub(crate) mod merged;
pub mod outbound;
pub(crate) mod pacing;
pub(crate) mod shard;
pub(crate) mod subscriptions;
pub(crate) mod timer;
pub(crate) mod transport;

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

/// State every shard of one server reads.
pub(crate) struct Shared {
    pub config: Config,
    pub shutting_down: AtomicBool,
    /// Open connections across all shards (for the connection limit).
    pub connections: AtomicUsize,
    pub metrics: Arc<Metrics>,
    /// The TLS server configuration, when `wss://` is on.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Verifies JWTs, when they are accepted.
    pub jwt: Option<Arc<crate::access::jwt::Verifier>>,
}
