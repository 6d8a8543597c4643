//! The router for order-book topics: applies a level change to the topic's
//! book and encodes, once per depth class and format in use, the levels
//! that changed inside that class's window (see `engine::book`).

use super::RouterWork;
use crate::engine::link::{BookEvent, BookFrames, Encoded, Event};
use crate::engine::table::{BookMove, BookView, Heard, Snapshot, TopicSlot};
use crate::model::book::{Levels, DEPTHS};
use crate::model::event::BookMsg;
use crate::model::event::PriceKind;
use crate::model::format::Format;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl RouterWork {
    /// Applies and numbers a book change of the topic in slot `id`, or
    /// counts it refused (it would cross the book): publishers check
    /// everything else before it is queued.
    ///
    /// Hot path: one diff and one encode per depth class and format in
    /// use, never per subscriber or shard.
    pub(super) fn apply_levels(
        &mut self,
        id: u32,
        slot: &Arc<TopicSlot>,
        ts: u64,
        levels: &Levels,
        at: Instant,
    ) {
        // The classes in use, read under the slot's lock (see
        // `TopicSlot::apply_levels`): the ones this change is encoded for.
        let mut classes = 0u8;
        let table = &self.table;
        let deepest = || {
            classes = table.book_classes();
            (0..DEPTHS.len())
                .filter(|c| classes & (1 << c) != 0)
                .map(|c| DEPTHS[c])
                .max()
                .unwrap_or(0)
        };
        let (applied, mv) = match slot.apply_levels(ts, levels, deepest, at) {
            Ok(done) => done,
            Err(why) => {
                let total = self.metrics.router.refused_books.fetch_add(1, Relaxed) + 1;
                if self
                    .book_logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    self.book_logged = Some(Instant::now());
                    log::warn!(
                        "book change for {} refused: {why} ({total} refused so far, \
                         tickcast_updates_refused_total{{reason=\"book\"}})",
                        slot.name
                    );
                }
                return;
            }
        };
        self.set_valued(id, true);
        let heard = Heard {
            seq: applied.seq,
            interest: applied.interest,
            generation: applied.generation,
        };
        if applied.went_live {
            self.emit(slot, heard, Event::Status { stale: false }, at);
        }
        let any = heard.interest.iter().fold(0u64, |a, m| a | m);
        if any == 0 {
            return;
        }
        let epoch = (applied.seq == 1).then_some(applied.epoch);
        let frames = self.encode_book_move(slot, &heard, ts, &mv, classes, epoch);
        let enc = Encoded {
            topic: slot.name.clone(),
            seq: applied.seq,
            generation: applied.generation,
            event: Event::Update {
                ts,
                prices: Default::default(),
                epoch,
            },
            frames: Default::default(),
            ingested_at: at,
            unmerged: false,
            book: Some(Box::new(BookEvent {
                frames: *frames,
                moved: Arc::new(mv),
            })),
            deflated: Default::default(),
        };
        self.send_out(Arc::new(enc), any);
    }

    /// A book loaded from the cluster's store (cluster mode): every
    /// subscriber gets a `book` snapshot at its depth, numbered `heard.seq`
    /// (encoded once per depth class and format in use, as a change is).
    pub(super) fn emit_book_snapshot(
        &mut self,
        slot: &Arc<TopicSlot>,
        heard: Heard,
        value: &Snapshot,
        view: Arc<BookView>,
        at: Instant,
    ) {
        let any = heard.interest.iter().fold(0u64, |a, m| a | m);
        if any == 0 {
            return;
        }
        let classes = self.table.book_classes();
        let checksum = view.checksum();
        let mut frames: Box<BookFrames> = Box::default();
        for (class, &depth) in DEPTHS.iter().enumerate() {
            if classes & (1 << class) == 0 {
                continue;
            }
            let (bids, asks) = view.cut(depth);
            let msg = BookMsg {
                kind: PriceKind::Snapshot,
                topic: &slot.name,
                seq: heard.seq,
                ts: value.ts,
                depth,
                bids,
                asks,
                checksum,
                epoch: Some(value.epoch.as_str()),
                stale: value.stale,
                conflated: 1,
            };
            for fmt in Format::ALL {
                if heard.interest[fmt.index()] != 0 {
                    frames[class][fmt.index()] = Some(self.enc.book(fmt, &msg).into());
                    self.encoded += 1;
                }
            }
        }
        let enc = Encoded {
            topic: slot.name.clone(),
            seq: heard.seq,
            generation: heard.generation,
            event: Event::Resync {
                ts: value.ts,
                prices: Default::default(),
                epoch: value.epoch,
            },
            frames: Default::default(),
            ingested_at: at,
            unmerged: true,
            book: Some(Box::new(BookEvent {
                frames: *frames,
                moved: Arc::new(BookMove {
                    before: view.clone(),
                    after: view,
                    checksum,
                }),
            })),
            deflated: Default::default(),
        };
        self.send_out(Arc::new(enc), any);
    }

    /// The `book_update` frames of one change, by depth class and format.
    fn encode_book_move(
        &mut self,
        slot: &TopicSlot,
        heard: &Heard,
        ts: u64,
        mv: &BookMove,
        classes: u8,
        epoch: Option<crate::engine::epoch::Epoch>,
    ) -> Box<BookFrames> {
        let mut frames: Box<BookFrames> = Box::default();
        for (class, &depth) in DEPTHS.iter().enumerate() {
            if classes & (1 << class) == 0 {
                continue;
            }
            let (bids, asks) = mv.after.change_since(&mv.before, depth);
            let msg = BookMsg {
                kind: PriceKind::Update,
                topic: &slot.name,
                seq: heard.seq,
                ts,
                depth,
                bids: &bids,
                asks: &asks,
                checksum: mv.checksum,
                epoch: epoch.as_ref().map(|e| e.as_str()),
                stale: false,
                conflated: 1,
            };
            for fmt in Format::ALL {
                if heard.interest[fmt.index()] == 0 {
                    continue;
                }
                let f = self.enc.book(fmt, &msg);
                frames[class][fmt.index()] = Some(f.into());
                self.encoded += 1;
            }
        }
        frames
    }
}
