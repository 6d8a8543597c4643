//! The topic table as `GET /admin/topics` shows it.

use super::TopicTable;
use crate::admin::TopicInfo;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The update rate is measured over at least this long.
const RATE_WINDOW: Duration = Duration::from_secs(10);

impl TopicTable {
    /// Every topic with a value: its seq, rate, age and staleness, with the
    /// subscribers the shards counted. Locks each slot briefly, one at a
    /// time; for an operator's request, not the hot path.
    pub(crate) fn admin_list(&self, subscribers: &HashMap<Arc<str>, u64>) -> Vec<TopicInfo> {
        let slots: Vec<_> = self.inner.read().topics.values().cloned().collect();
        let now = Instant::now();
        let mut out: Vec<TopicInfo> = slots
            .iter()
            .filter_map(|slot| {
                let mut st = slot.state.lock();
                let seq = st.value.seq;
                if seq == 0 {
                    return None;
                }
                let (at, from) = st.rate_mark;
                let span = now.saturating_duration_since(at);
                let rate = (seq - from.min(seq)) as f64 / span.as_secs_f64().max(1e-3);
                if span >= RATE_WINDOW {
                    st.rate_mark = (now, seq);
                }
                Some(TopicInfo {
                    topic: slot.name.clone(),
                    seq,
                    subscribers: subscribers.get(&slot.name).copied().unwrap_or(0),
                    updates_per_sec: (rate * 100.0).round() / 100.0,
                    age_secs: now.saturating_duration_since(st.changed_at).as_secs_f64(),
                    stale: st.value.stale,
                })
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }
}
