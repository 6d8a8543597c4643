//! What links the router to the shards: the sequenced, encoded update they
//! share, and the [`Outlet`] a batch of them goes out through.
//!
//! It lives in the engine, below both sides, so the router never imports the
//! network code; the shards' mailbox (`net::mailbox`) implements `Outlet`.

use super::epoch::Epoch;
use super::table::BookMove;
use crate::model::book::DEPTHS;
use crate::model::format::Format;
use crate::model::update::Prices;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What happened to a topic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    /// An update with these fields (kept so a conflating connection can merge
    /// the updates it skips).
    Update {
        ts: u64,
        prices: Prices,
        /// Set on the first update of a numbering (`seq` 1), which names it.
        epoch: Option<Epoch>,
    },
    /// The topic went stale (true) or live again (false).
    Status { stale: bool },
    /// The topic was cleared: its numbering restarts in a new epoch.
    Cleared,
    /// Cluster mode: the topic's value was loaded from the cluster's store
    /// after updates were missed; subscribers get it as a snapshot (`seq`
    /// is its number), and it starts a new generation like a clear.
    Resync {
        ts: u64,
        prices: Prices,
        epoch: Epoch,
    },
}

/// One sequenced event of a topic, encoded once, shared by every shard and
/// subscriber that receives it.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub topic: Arc<str>,
    /// The update's sequence number (for a status or a clear: the topic's
    /// sequence number when it happened).
    pub seq: u64,
    /// The topic's clear count when it happened (see `Joined::generation`).
    pub generation: u16,
    pub event: Event,
    /// Ready WebSocket frames by `Format::index`; `None` where no shard had a
    /// subscriber using that format when the update was sequenced.
    pub frames: [Option<Box<[u8]>>; Format::COUNT],
    /// When the update entered the ingest channel.
    pub ingested_at: Instant,
    /// Of a trade or book topic: delivered always, never merged or paced.
    pub unmerged: bool,
    /// Of a book topic: its frames by depth class, and the book's top
    /// levels before and after the change; `frames` is then empty.
    pub book: Option<Box<BookEvent>>,
    /// Compressed copies of the frames, made when a shard first sends one
    /// to a client that negotiated permessage-deflate (boxed: most events
    /// never need them).
    pub deflated: OnceLock<Box<DeflatedFrames>>,
}

/// An event's frames compressed (permessage-deflate without context
/// takeover, so the same bytes suit every client that negotiated it), by
/// `[class][Format::index]`; a price event uses class 0. `None` in a set
/// cell: compressing did not make that frame shorter.
#[derive(Debug, Default)]
pub(crate) struct DeflatedFrames([[DeflatedCell; Format::COUNT]; DEPTHS.len()]);

/// One compressed frame, once made (`None`: not worth it).
type DeflatedCell = OnceLock<Option<Box<[u8]>>>;

/// What a book update carries beside its frames: the top levels before
/// and after it (as deep as the deepest class in use), so a connection
/// that holds updates back (conflation, `max_rate`) sends one exact change
/// from the window it had to the window now, bounded by its depth.
#[derive(Debug)]
pub(crate) struct BookEvent {
    pub frames: BookFrames,
    pub moved: Arc<BookMove>,
}

/// A book update's frames: `[class][Format::index]`.
pub(crate) type BookFrames = [[Option<Box<[u8]>>; Format::COUNT]; DEPTHS.len()];

impl Encoded {
    /// The frame for a subscriber using `fmt` (and, for a book, depth
    /// class `class`); None when no frame was made for it.
    #[inline]
    pub(crate) fn frame(&self, fmt: Format, class: usize) -> Option<&[u8]> {
        match &self.book {
            Some(b) => b.frames.get(class)?[fmt.index()].as_deref(),
            None => self.frames[fmt.index()].as_deref(),
        }
    }

    /// The compressed frame for `fmt` and `class`, made by `make` (from the
    /// plain frame) the first time any shard asks, then shared; None when
    /// compressing does not pay. Two shards asking at once may both
    /// compress, and one result is kept: neither waits for the other's work.
    pub(crate) fn deflated(
        &self,
        fmt: Format,
        class: usize,
        make: impl FnOnce() -> Option<Box<[u8]>>,
    ) -> Option<&[u8]> {
        let cell = &self.deflated.get_or_init(Default::default).0.get(class)?[fmt.index()];
        if cell.get().is_none() {
            let _ = cell.set(make());
        }
        cell.get()?.as_deref()
    }

    /// Was a frame made for subscribers using `fmt`?
    pub(crate) fn has_format(&self, fmt: Format) -> bool {
        match &self.book {
            Some(b) => b.frames.iter().any(|c| c[fmt.index()].is_some()),
            None => self.frames[fmt.index()].is_some(),
        }
    }
}

/// Where the router hands a shard its batch: `net`'s shard mailbox
/// implements it (a channel and a waker), so the engine never names the
/// network side's message type.
pub(crate) trait Outlet: Send + Sync {
    /// Queues one batch for the shard and wakes it. Blocks while the shard
    /// is far behind: back-pressure then reaches the ingest channel and so
    /// the publishers, instead of memory growing.
    fn deliver(&self, batch: Vec<Arc<Encoded>>);
}

#[cfg(test)]
impl Encoded {
    /// An update of `topic` as the router makes it (its JSON frame, if
    /// given, standing in for the encoded one), for unit tests.
    pub(crate) fn test_update(
        topic: &str,
        seq: u64,
        prices: Prices,
        json: Option<&[u8]>,
    ) -> Arc<Encoded> {
        Arc::new(Encoded {
            topic: topic.into(),
            seq,
            generation: 0,
            event: Event::Update {
                ts: seq,
                prices,
                epoch: None,
            },
            frames: [json.map(Into::into), None],
            ingested_at: Instant::now(),
            unmerged: crate::engine::table::is_trades(topic),
            book: None,
            deflated: Default::default(),
        })
    }
}
