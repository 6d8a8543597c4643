//! Whether a topic's value is current: its publisher is there and it has
//! been updated within its `stale_after`, or not.

/// A topic's liveness, as publishers mark it and subscribers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Current: its feed is there.
    Live,
    /// Its publisher left, or no update came within `stale_after`: the value
    /// shown may be old.
    Stale,
}

impl Liveness {
    /// True for [`Liveness::Stale`] (the `stale` flag of events).
    pub fn is_stale(self) -> bool {
        self == Liveness::Stale
    }

    /// From the `stale` flag of events and the cluster's messages.
    pub fn from_stale(stale: bool) -> Liveness {
        match stale {
            true => Liveness::Stale,
            false => Liveness::Live,
        }
    }
}
