//! What the router asks the encoders to write: a price event, a book event,
//! a status change. The encoders live in `wire`; the router reaches them
//! through [`Encode`], so `engine` and `wire` never import each other.

use super::format::Format;
use super::update::Prices;

/// Keys events and publish frames use already, besides the price fields:
/// no extra field may take one (config), and in an event every other
/// numeric key is a field (the Rust subscriber).
pub(crate) const PROTOCOL_KEYS: &[&str] = &[
    "event",
    "topic",
    "seq",
    "ts",
    "epoch",
    "stale",
    "conflated",
    "trades",
    "bids",
    "asks",
    "depth",
    "checksum",
    "clear",
    "replace",
    "id",
    "code",
    "message",
    "state",
];

/// A trade as the snapshot lists it: (`seq`, `ts`, fields).
pub type Trade = (u64, u64, Prices);

/// Which price event to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceKind {
    /// The latest merged value, sent first when a subscription starts.
    Snapshot,
    /// One published update: only the fields it carried.
    Update,
}

/// A `snapshot` or `update` event to encode.
#[derive(Debug, Clone, Copy)]
pub struct Price<'a> {
    /// Snapshot or update.
    pub kind: PriceKind,
    /// The topic.
    pub topic: &'a str,
    /// Its sequence number.
    pub seq: u64,
    /// Publisher timestamp, ns since the Unix epoch.
    pub ts: u64,
    /// The fields to send (absent ones are left out).
    pub prices: &'a Prices,
    /// Snapshots: the topic's epoch.
    pub epoch: Option<&'a str>,
    /// Snapshots: the topic is stale.
    pub stale: bool,
    /// Updates: how many published updates this one stands for (sent when above 1).
    pub conflated: u32,
    /// Trade topics' snapshots: the last trades, oldest first.
    pub trades: Option<&'a [Trade]>,
}

impl<'a> Price<'a> {
    /// A plain `update` event: one published update.
    pub fn update(topic: &'a str, seq: u64, ts: u64, prices: &'a Prices) -> Self {
        Price {
            kind: PriceKind::Update,
            topic,
            seq,
            ts,
            prices,
            epoch: None,
            stale: false,
            conflated: 1,
            trades: None,
        }
    }
}

/// A `book` snapshot or a `book_update` event of an order-book topic: the
/// levels as `[price, size]` pairs, best first (a `book_update` lists only
/// the levels that changed in the subscriber's window, size 0 = gone).
#[derive(Debug, Clone, Copy)]
pub struct BookMsg<'a> {
    /// Snapshot (`book`) or update (`book_update`).
    pub kind: PriceKind,
    /// The topic.
    pub topic: &'a str,
    /// Its sequence number.
    pub seq: u64,
    /// Publisher timestamp, ns since the Unix epoch.
    pub ts: u64,
    /// The subscriber's depth: how many levels per side its window holds.
    pub depth: usize,
    /// Bid levels, best (highest) first.
    pub bids: &'a [(f64, f64)],
    /// Ask levels, best (lowest) first.
    pub asks: &'a [(f64, f64)],
    /// CRC-32 of the top levels after this event (`engine::book::checksum`).
    pub checksum: u32,
    /// Snapshots, and an update with `seq` 1: the topic's epoch.
    pub epoch: Option<&'a str>,
    /// Snapshots: the topic is stale.
    pub stale: bool,
    /// Updates: how many published changes this one stands for (sent when
    /// above 1: a connection that fell behind, or a `max_rate`).
    pub conflated: u32,
}

/// The encoders the router calls, once per update and format in use: each
/// returns a complete WebSocket frame, valid until the next call. `wire`
/// implements it; `server` hands one to each router thread.
pub trait Encode: Send {
    /// A `snapshot` or `update` event; the server's extra fields (`names`,
    /// in index order) go by name.
    fn price(&mut self, fmt: Format, price: &Price<'_>, names: &[Box<str>]) -> &[u8];
    /// A `book` or `book_update` event.
    fn book(&mut self, fmt: Format, msg: &BookMsg<'_>) -> &[u8];
    /// A `status` event: the topic went stale or live again.
    fn status(&mut self, fmt: Format, topic: &str, stale: bool) -> &[u8];
    /// A `cleared` event: the topic was removed.
    fn cleared(&mut self, fmt: Format, topic: &str) -> &[u8];
}
