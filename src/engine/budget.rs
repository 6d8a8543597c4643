//! The server-wide budget of all topics' histories (`history_bytes`): the
//! router evicts the oldest entries, of any topic, first.

use super::history::STORED_BYTES;
use super::table::TopicSlot;
use std::collections::VecDeque;
use std::sync::Arc;

/// What one history entry costs, with its place in the server-wide order.
pub(crate) const ENTRY_BYTES: usize = STORED_BYTES + std::mem::size_of::<Place>();

/// An entry's place in the server-wide order: the router's slot number, the
/// topic's clear count, the entry's seq.
type Place = (u32, u16, u64);

/// The server-wide history budget, kept by the router: every entry in the
/// order it was added, so the oldest is evicted first when the budget is spent.
pub(crate) struct HistoryBudget {
    /// (the router's slot number, seq), oldest first: plain numbers, so the
    /// hot path adds no reference count traffic.
    order: VecDeque<Place>,
    max_entries: usize,
}

impl HistoryBudget {
    pub fn new(max_bytes: usize) -> Self {
        HistoryBudget {
            order: VecDeque::new(),
            max_entries: max_bytes / ENTRY_BYTES,
        }
    }

    /// Records an entry just added to the history of `slots[id]`; evicts
    /// the oldest entries (of any topic) while more than the budget are
    /// kept. `kept` is the server-wide count of entries, updated here.
    pub fn added(
        &mut self,
        slots: &[Arc<TopicSlot>],
        (id, generation, seq): Place,
        kept: &mut usize,
    ) {
        self.order.push_back((id, generation, seq));
        while *kept > self.max_entries {
            let Some((old, g, old_seq)) = self.order.pop_front() else {
                break;
            };
            *kept -= slots[old as usize].evict_history_through(g, old_seq);
        }
        // Entries a topic dropped itself (its own cap, a clear) leave stale
        // places behind; compact when they outnumber the live ones, so this
        // queue stays within twice the entries kept (amortized O(1)).
        if self.order.len() > 2 * *kept + 1024 {
            self.order
                .retain(|(id, g, seq)| slots[*id as usize].history_holds(*g, *seq));
        }
    }
}
