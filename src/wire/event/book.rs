//! Order-book events: a `book` snapshot and `book_update` changes, each
//! encoded once per depth class and format (see `engine::book`).

use super::{encode, PriceKind};
use crate::wire::frame::FrameBuf;
use crate::wire::Format;
use serde::Serialize;

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

#[derive(Serialize)]
struct BookEvent<'a> {
    event: &'static str,
    topic: &'a str,
    seq: u64,
    ts: u64,
    depth: usize,
    bids: &'a [(f64, f64)],
    asks: &'a [(f64, f64)],
    checksum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflated: Option<u32>,
}

/// Encodes a `book` or `book_update` event as a complete frame in `fb`.
pub fn encode_book<'a>(fb: &'a mut FrameBuf, fmt: Format, m: &BookMsg<'_>) -> &'a [u8] {
    let ev = BookEvent {
        event: match m.kind {
            PriceKind::Snapshot => "book",
            PriceKind::Update => "book_update",
        },
        topic: m.topic,
        seq: m.seq,
        ts: m.ts,
        depth: m.depth,
        bids: m.bids,
        asks: m.asks,
        checksum: m.checksum,
        epoch: m.epoch,
        stale: m.stale,
        conflated: (m.conflated > 1).then_some(m.conflated),
    };
    encode(fb, fmt, &ev)
}
