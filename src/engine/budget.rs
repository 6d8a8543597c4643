//! The server-wide budget of all topics' histories (`history_bytes`): the
//! router evicts the oldest entries, of any topic, first.

use super::history::Past;
use super::table::TopicSlot;
use std::collections::VecDeque;
use std::sync::Arc;

/// What one history entry costs, with its place in the server-wide order.
pub(crate) const ENTRY_BYTES: usize =
    std::mem::size_of::<Past>() + std::mem::size_of::<(Arc<TopicSlot>, u64)>();

/// The server-wide history budget, kept by the router: every entry in the
/// order it was added, so the oldest is evicted first when the budget is spent.
pub(crate) struct HistoryBudget {
    order: VecDeque<(Arc<TopicSlot>, u64)>,
    max_entries: usize,
}

impl HistoryBudget {
    pub fn new(max_bytes: usize) -> Self {
        HistoryBudget {
            order: VecDeque::new(),
            max_entries: max_bytes / ENTRY_BYTES,
        }
    }

    /// Records an entry just added to `slot`'s history; evicts the oldest
    /// entries (of any topic) while more than the budget are kept.
    /// `kept` is the server-wide count of entries, updated here.
    pub fn added(&mut self, slot: &Arc<TopicSlot>, seq: u64, kept: &mut usize) {
        self.order.push_back((slot.clone(), seq));
        while *kept > self.max_entries {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            *kept -= old.evict_history_through(old_seq);
        }
        // Entries a topic dropped itself (its own cap, a clear) leave stale
        // places behind; compact when they outnumber the live ones, so this
        // queue stays within twice the entries kept.
        if self.order.len() > 2 * *kept + 1024 {
            self.order.retain(|(s, seq)| s.history_holds(*seq));
        }
    }
}
