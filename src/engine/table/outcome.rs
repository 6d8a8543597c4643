//! What the table tells the shard that joins a topic and the router that
//! changes one: the snapshot (and replay, and trades) taken under the slot
//! lock, and who must hear of a change.

use super::{ShardMask, SlotState, Snapshot};
use crate::engine::epoch::Epoch;
use crate::engine::history::Past;

/// What a shard learns when it joins a topic, taken under the slot lock that
/// also sets its interest: the value, and for a resume that history can
/// serve, exactly the updates the client missed.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub snapshot: Snapshot,
    pub replay: Option<Vec<Past>>,
    /// How many times the topic was cleared (wrapping): which numbering the
    /// snapshot's `seq` belongs to, for the shard's bookkeeping.
    pub generation: u16,
    /// A trade topic's snapshot: its last trades (`trades`).
    pub trades: Option<Vec<Past>>,
    /// An order-book topic's snapshot: its top levels (`book`).
    pub book: Option<Box<super::BookView>>,
}

/// What the router did to a topic, and who must hear of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    pub seq: u64,
    pub interest: ShardMask,
    pub generation: u16,
    /// The topic was stale: a `live` status goes out ahead of this update.
    pub went_live: bool,
    /// The topic's epoch (an update with `seq` 1 names it: a client that
    /// subscribed to a pattern before the topic existed learns it there).
    pub epoch: Epoch,
    /// History entries this topic dropped to stay within its own cap.
    pub history_dropped: usize,
}

/// Who must hear of a change to a topic, and in which numbering it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heard {
    pub seq: u64,
    pub interest: ShardMask,
    pub generation: u16,
}

impl Heard {
    pub(super) fn of(st: &SlotState) -> Heard {
        Heard {
            seq: st.value.seq,
            interest: st.interest,
            generation: st.generation,
        }
    }
}
