//! Order-book events: a `book` snapshot and `book_update` changes, each
//! encoded once per depth class and format (see `engine::book`).

use super::encode;
use crate::model::event::{BookMsg, PriceKind};
use crate::model::format::Format;
use crate::wire::frame::FrameBuf;
use serde::Serialize;

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
