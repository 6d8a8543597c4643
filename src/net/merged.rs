//! Updates of one topic held back for a connection (by conflation or a rate
//! cap), merged field by field: what goes out carries every field they
//! changed, each at its latest value, the latest `seq`, and how many
//! published updates it stands for.

use super::outbound::Outbound;
use crate::engine::epoch::Epoch;
use crate::engine::link::{Encoded, Event};
use crate::engine::update::Prices;
use crate::wire::event::{encode_price, Price};
use crate::wire::frame::FrameBuf;
use crate::wire::Format;
use std::sync::Arc;
use std::time::Instant;

/// The updates of one topic held back for a connection, merged.
#[derive(Debug)]
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
}

fn epoch_of(enc: &Encoded) -> Option<Epoch> {
    match enc.event {
        Event::Update { epoch, .. } => epoch,
        _ => None,
    }
}

impl Merged {
    pub(crate) fn new(enc: &Arc<Encoded>, ts: u64, prices: &Prices) -> Merged {
        Merged {
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
    }

    /// Merges a later run of held-back updates into this one.
    pub(crate) fn absorb_merged(&mut self, later: Merged) {
        self.seq = later.seq;
        self.ts = later.ts;
        self.prices.merge(&later.prices);
        self.count += later.count;
        self.only = None;
        self.epoch = self.epoch.or(later.epoch);
    }

    /// Queues this as one event: the shared frame when it stands for one
    /// update, else an `update` encoded for this connection.
    pub(crate) fn send(self, out: &mut Outbound, enc: &mut Encoding<'_>, topic: &str) {
        let fmt = enc.fmt;
        if let Some(frame) = self
            .only
            .as_ref()
            .and_then(|e| e.frames[fmt.index()].as_deref())
        {
            out.push(frame);
            return;
        }
        let update = Price {
            conflated: self.count,
            epoch: self.epoch.as_ref().map(Epoch::as_str),
            ..Price::update(topic, self.seq, self.ts, &self.prices)
        };
        out.push(encode_price(enc.fb, fmt, &update, enc.names));
    }
}

/// Where a connection's own events are encoded (merged updates): the
/// shard's buffer, the connection's format and the server's extra fields.
pub(crate) struct Encoding<'a> {
    pub fb: &'a mut FrameBuf,
    pub fmt: Format,
    pub names: &'a [Box<str>],
}
