//! The router's operations other than a plain update: clears, stale and
//! live marks (by publishers and by the quiet-topic sweep), a topic's own
//! `stale_after`, and the cluster's numbered updates, loads and barriers.

use super::{RouterWork, Slot, SWEEP_PERIOD};
use crate::engine::link::Event;
use crate::engine::op::IngestOp;
use crate::engine::table::{Heard, TopicSlot};
use std::sync::Arc;
use std::time::Instant;

impl RouterWork {
    /// Carries out an operation other than a plain update (a clear, a
    /// stale mark, the cluster's numbered updates and loads); returns the
    /// updates it counts as ingested.
    pub(super) fn apply_op(&mut self, op: IngestOp, at: Instant) -> u64 {
        match op {
            // Read above, where it lay.
            IngestOp::Update(_) => {}
            IngestOp::Clear(topic) => {
                // A topic never published has nothing to clear.
                if let Some((id, _)) = self.existing_slot(&topic, Slot::Existing) {
                    self.clear_slot(id, at);
                }
            }
            IngestOp::Stale(topic, stale) => {
                let Some((_, slot)) = self.existing_slot(&topic, Slot::Existing) else {
                    return 0;
                };
                let stale = stale.is_stale();
                if let Some(heard) = slot.set_stale(stale) {
                    self.emit(&slot, heard, Event::Status { stale }, at);
                }
            }
            IngestOp::StaleAfter(topic, after) => {
                // Set ahead of the first update, so it may make the slot.
                if let Some((_, slot)) = self.existing_slot(&topic, Slot::MakeIfRoom) {
                    slot.set_stale_after(after);
                }
                self.sweeping |= after.is_some();
            }
            IngestOp::Numbered(n) => {
                self.numbered(*n, at);
                return 1;
            }
            IngestOp::Run(run) => {
                let count = run.updates.len() as u64;
                self.numbered_run(*run, at);
                return count;
            }
            IngestOp::Load(l) => self.load(*l, at),
            IngestOp::Unfollow(topic) => {
                if let Some((_, slot)) = self.existing_slot(&topic, Slot::Existing) {
                    slot.unfollow();
                }
            }
            IngestOp::Barrier(done) => {
                let _ = done.try_send(());
            }
        }
        0
    }

    /// Forgets the value and history of the topic in slot `id`.
    pub(super) fn clear_slot(&mut self, id: u32, at: Instant) {
        let slot = self.list[id as usize].clone();
        self.set_valued(id, false);
        let (heard, freed) = slot.clear();
        self.history_kept -= freed;
        self.emit(&slot, heard, Event::Cleared, at);
    }

    /// Marks stale every topic quiet for longer than its `stale_after`.
    pub(super) fn sweep(&mut self) {
        let now = Instant::now();
        self.next_sweep = now + SWEEP_PERIOD;
        let quiet: Vec<(Arc<TopicSlot>, Heard)> = self
            .list
            .iter()
            .filter_map(|s| Some((s.clone(), s.stale_if_quiet(now, self.config.stale_after)?)))
            .collect();
        for (slot, heard) in quiet {
            self.emit(&slot, heard, Event::Status { stale: true }, now);
        }
    }
}
