//! A topic going stale and live again: marked by publishers, found quiet by
//! the router's sweep.

use super::{Heard, TopicSlot};
use std::time::{Duration, Instant};

impl TopicSlot {
    /// Router only: marks the topic stale or live. Returns who must hear of
    /// it when that changed anything (a topic without a value stays as it is).
    pub(crate) fn set_stale(&self, stale: bool) -> Option<Heard> {
        let mut st = self.state.lock();
        if st.value.seq == 0 || st.value.stale == stale {
            return None;
        }
        st.value.stale = stale;
        Some(Heard::of(&st))
    }

    /// Router only: marks the topic stale if it has not changed for its own
    /// `stale_after`, or else `default`.
    pub(crate) fn stale_if_quiet(&self, now: Instant, default: Option<Duration>) -> Option<Heard> {
        let mut st = self.state.lock();
        let after = st.stale_after.or(default)?;
        if st.value.seq == 0 || st.value.stale || now.duration_since(st.changed_at) < after {
            return None;
        }
        st.value.stale = true;
        Some(Heard::of(&st))
    }

    /// Router only: this topic's own `stale_after` (None: the server's).
    pub(crate) fn set_stale_after(&self, after: Option<Duration>) {
        self.state.lock().stale_after = after;
    }
}
