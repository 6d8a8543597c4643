//! Updates of one topic held back for a connection (by conflation or a rate
//! cap), merged field by field: what goes out carries every field they
//! changed, each at its latest value, the latest `seq`, and how many
//! published updates it stands for.

use super::outbound::Outbound;
use crate::engine::epoch::Epoch;
use crate::engine::link::{Encoded, Event};
use crate::engine::table::BookMove;
use crate::model::book::DEPTHS;
use crate::model::event::BookMsg;
use crate::model::event::Price;
use crate::model::event::PriceKind;
use crate::model::format::Format;
use crate::model::update::Prices;
use crate::wire::event::book::encode_book;
use crate::wire::event::encode_price;
use crate::wire::frame::FrameBuf;
use std::sync::Arc;
use std::time::Instant;

/// The updates of one topic held back for a connection (or for the
/// subscribers of a topic that share a rate cap), merged.
#[derive(Debug, Clone)]
pub(crate) struct Merged {
    seq: u64,
    ts: u64,
    /// Every field the held-back updates carried, each at its latest value.
    prices: Prices,
    /// How many published updates this stands for.
    count: u32,
    /// While it stands for one update: that update, whose shared frame is
    /// exactly what to send (no encoding needed).
    only: Option<Arc<Encoded>>,
    /// The numbering's epoch, when the first update of it (`seq` 1) is among
    /// them: the merged update names it as that one did.
    epoch: Option<Epoch>,
    pub(crate) ingested_at: Instant,
    /// Of a book topic: what it held back, as book windows.
    book: Option<Box<HeldBook>>,
}

/// Book changes held back: the book before the first and after the last.
/// The change sent is the difference of the connection's two windows, so
/// it is exact and never more than its depth a side, however many changes
/// it stands for.
#[derive(Debug, Clone)]
struct HeldBook {
    first: Arc<BookMove>,
    last: Arc<BookMove>,
    /// The depth class the connection receives the topic at.
    class: usize,
}

fn epoch_of(enc: &Encoded) -> Option<Epoch> {
    match enc.event {
        Event::Update { epoch, .. } => epoch,
        _ => None,
    }
}

impl Merged {
    /// `class`: the depth class the connection receives a book topic at.
    pub(crate) fn new(enc: &Arc<Encoded>, ts: u64, prices: &Prices, class: usize) -> Merged {
        let book = enc.book.as_ref().map(|b| {
            let (first, last) = (b.moved.clone(), b.moved.clone());
            Box::new(HeldBook { first, last, class })
        });
        Merged {
            book,
            seq: enc.seq,
            ts,
            prices: *prices,
            count: 1,
            only: Some(enc.clone()),
            epoch: epoch_of(enc),
            ingested_at: enc.ingested_at,
        }
    }

    pub(crate) fn absorb(&mut self, enc: &Encoded, ts: u64, prices: &Prices) {
        self.seq = enc.seq;
        self.ts = ts;
        self.prices.merge(prices);
        self.count += 1;
        self.only = None;
        self.epoch = self.epoch.or(epoch_of(enc));
        if let (Some(held), Some(b)) = (self.book.as_mut(), enc.book.as_ref()) {
            held.last = b.moved.clone();
        }
    }

    /// Merges a later run of held-back updates into this one.
    pub(crate) fn absorb_merged(&mut self, later: Merged) {
        self.seq = later.seq;
        self.ts = later.ts;
        self.prices.merge(&later.prices);
        self.count += later.count;
        self.only = None;
        self.epoch = self.epoch.or(later.epoch);
        if let (Some(held), Some(l)) = (self.book.as_mut(), later.book) {
            held.last = l.last;
        }
    }

    /// Queues this as one event: the shared frame when it stands for one
    /// update, else an `update` encoded for this connection.
    pub(crate) fn send(self, out: &mut Outbound, enc: &mut EventWriter<'_>, topic: &str) {
        let class = self.book.as_ref().map_or(0, |b| b.class);
        out.push(self.frame_as(enc, topic, class, self.count));
    }

    /// The updates it stands for, and the seq of the last.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn is_book(&self) -> bool {
        self.book.is_some()
    }

    /// A copy for a subscriber that receives the topic at depth class
    /// `class` and for whom it stands for `count` updates (fewer than it
    /// holds when the subscriber's snapshot covered the first of them).
    pub(crate) fn for_member(&self, class: usize, count: u32) -> Merged {
        let mut m = self.clone();
        if let Some(b) = m.book.as_mut() {
            b.class = class;
        }
        if count != m.count {
            m.only = None;
            m.count = count;
        }
        m
    }

    /// This as one event frame at depth class `class`, standing for `count`
    /// updates: the shared frame when it is one unmerged update, else
    /// encoded in `enc`'s buffer.
    pub(crate) fn frame_as<'s>(
        &'s self,
        enc: &'s mut EventWriter<'_>,
        topic: &str,
        class: usize,
        count: u32,
    ) -> &'s [u8] {
        let fmt = enc.fmt;
        if count == self.count {
            if let Some(frame) = self.only.as_ref().and_then(|e| e.frame(fmt, class)) {
                return frame;
            }
        }
        if let Some(held) = &self.book {
            let depth = DEPTHS[class];
            let (bids, asks) = held.last.after.change_since(&held.first.before, depth);
            let msg = BookMsg {
                kind: PriceKind::Update,
                topic,
                seq: self.seq,
                ts: self.ts,
                depth,
                bids: &bids,
                asks: &asks,
                checksum: held.last.checksum,
                epoch: self.epoch.as_ref().map(Epoch::as_str),
                stale: false,
                conflated: count,
            };
            return encode_book(enc.fb, fmt, &msg);
        }
        let update = Price {
            conflated: count,
            epoch: self.epoch.as_ref().map(Epoch::as_str),
            ..Price::update(topic, self.seq, self.ts, &self.prices)
        };
        encode_price(enc.fb, fmt, &update, enc.names)
    }
}

/// Where a connection's own events are encoded (merged updates): the
/// shard's buffer, the connection's format and the server's extra fields.
pub(crate) struct EventWriter<'a> {
    pub fb: &'a mut FrameBuf,
    pub fmt: Format,
    pub names: &'a [Box<str>],
}
