//! What the operator endpoints (`/admin/…`) ask the shards and the topic
//! table, and what they answer: plain data, so a shard's mailbox can carry
//! a question and a reload thread its answer.

use serde::Serialize;
use std::sync::Arc;

/// A question to one shard.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AdminQuery {
    /// Its open connections.
    Connections,
    /// Close this connection (by [`ConnInfo::id`]) with 1008, if it is here.
    Close { id: u64 },
    /// Its subscribers per topic.
    Topics,
}

/// A shard's answer.
pub(crate) enum AdminReply {
    Connections(Vec<ConnInfo>),
    Closed(bool),
    Topics(Vec<(Arc<str>, u32)>),
    /// The outcome of `POST /admin/reload` (from the reload thread, not a
    /// shard); the shard renders the HTTP answer.
    Reloaded(crate::error::Result<crate::config::source::Reloaded>),
}

/// One connection, as `GET /admin/connections` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ConnInfo {
    /// Unique in the server: the shard in the top 16 bits, the shard's
    /// connection number below.
    pub id: u64,
    pub peer: Option<String>,
    /// The JWT's `sub`, when it had one.
    pub sub: Option<String>,
    /// `subscriber` or `publisher`.
    pub role: &'static str,
    /// `json` or `msgpack`.
    pub format: &'static str,
    /// Its subscriptions (at most the first 100), and how many it has.
    pub subscriptions: Vec<String>,
    pub subscription_count: usize,
    /// What it holds: queued bytes and held-back updates.
    pub queued_bytes: usize,
    /// Past its conflation mark: its updates are being merged.
    pub conflating: bool,
    /// Seconds since the Unix epoch.
    pub connected_since: u64,
    /// permessage-deflate: `shared` (compressed once for every such
    /// subscriber) or `per_connection` (a window of its own); None: off.
    pub deflate: Option<&'static str>,
    /// Its events of one flush go out as one message.
    pub batch: bool,
    /// Its byte budget, bytes per second, if one applies.
    pub max_bytes_per_sec: Option<u64>,
}

/// One topic, as `GET /admin/topics` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct TopicInfo {
    #[serde(serialize_with = "as_str")]
    pub topic: Arc<str>,
    pub seq: u64,
    pub subscribers: u64,
    /// Updates per second since the previous listing at least 10 s ago (or
    /// since the topic was created).
    pub updates_per_sec: f64,
    /// Seconds since its value last changed.
    pub age_secs: f64,
    pub stale: bool,
}

fn as_str<S: serde::Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}
