//! The router in cluster mode: updates come numbered by the cluster's
//! store, and topics that missed some are loaded from it (see
//! `table::cluster`). The cluster link (`crate::cluster`) feeds both in
//! through the ingest channel, in the order the store gave them.

use super::{RouterWork, Slot};
use crate::engine::link::Event;
use crate::engine::op::{Loaded, Numbered};
use crate::engine::table::Fit;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

impl RouterWork {
    /// Asks the cluster link to load topics past a gap (cluster mode).
    pub(crate) fn set_loads(&mut self, loads: crossbeam_channel::Sender<Arc<str>>) {
        self.loads = Some(loads);
    }

    /// An update the store numbered: applied when it is the next one of
    /// the topic's numbering, dropped when already applied; past a gap, the
    /// topic is loaded instead (its subscribers then get a snapshot, never
    /// a silent jump).
    pub(super) fn numbered(&mut self, n: Numbered, at: Instant) {
        let Some(id) = self.admit(&n.update.topic) else {
            self.metrics.router.refused_topics.fetch_add(1, Relaxed);
            return;
        };
        let slot = self.list[id as usize].clone();
        match slot.fit(n.epoch, n.seq) {
            Fit::Duplicate => {}
            Fit::Next => self.apply_update(id, &n.update, at),
            Fit::First => {
                slot.adopt_epoch(n.epoch);
                self.apply_update(id, &n.update, at);
            }
            Fit::Restart => {
                self.clear_slot(id, at);
                slot.adopt_epoch(n.epoch);
                self.apply_update(id, &n.update, at);
            }
            Fit::Gap => {
                if let Some(loads) = &self.loads {
                    // Full: the link is behind on loads already, and the
                    // next update of this topic asks again.
                    let _ = loads.try_send(slot.name.clone());
                }
            }
        }
    }

    /// A topic as the store holds it: a newer value replaces the one here
    /// (with its history) and goes to subscribers as a snapshot; no value
    /// in the store clears the topic here.
    pub(super) fn load(&mut self, l: Loaded, at: Instant) {
        let Some((id, slot)) = self.existing_slot(&l.topic, Slot::MakeIfRoom) else {
            return;
        };
        // Shared by every node (a node that loads the topic late included);
        // set after a clear, which drops it.
        let shared_stale_after = |router: &mut RouterWork| {
            slot.set_stale_after(l.stale_after);
            router.sweeping |= l.stale_after.is_some();
        };
        let Some(value) = l.value else {
            if slot.snapshot().seq > 0 {
                self.clear_slot(id, at);
            }
            shared_stale_after(self);
            return;
        };
        shared_stale_after(self);
        let cap = self.config.history_len.max(slot.trades_keep);
        let was_stale = slot.snapshot().stale;
        let stale = value.stale;
        match slot.load(value, &l.history, cap) {
            None => {
                // Current already; it may have been marked stale while the
                // link was down, or its publisher left meanwhile.
                if let Some(heard) = slot.set_stale(stale) {
                    self.emit(&slot, heard, Event::Status { stale }, at);
                }
            }
            Some((heard, freed, added)) => {
                self.set_valued(id, true);
                self.history_kept -= freed;
                for seq in value.seq + 1 - added as u64..=value.seq {
                    self.history_kept += 1;
                    let place = (id, heard.generation, seq);
                    self.budget.added(&self.list, place, &mut self.history_kept);
                }
                match &l.book {
                    Some(book) => {
                        let view = slot.load_book(book);
                        self.emit_book_snapshot(&slot, heard, &value, view, at);
                    }
                    None => {
                        let event = Event::Resync {
                            ts: value.ts,
                            prices: value.prices,
                            epoch: value.epoch,
                        };
                        self.emit(&slot, heard, event, at);
                    }
                }
                if was_stale != stale {
                    // Said in so many words to whoever saw it before.
                    self.emit(&slot, heard, Event::Status { stale }, at);
                }
            }
        }
    }
}
