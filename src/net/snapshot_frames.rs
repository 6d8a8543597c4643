//! Snapshot frames encoded once for joins that went together
//! (`OwedGroup` in `net::index::joins`): a topic in several connections'
//! lists of one group has one snapshot, so its frame is encoded for the
//! first and copied for the rest. When 40 wildcard subscribers reconnect
//! together, that is one encoding per topic instead of 40.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct SnapshotFrames {
    bytes: Vec<u8>,
    /// By topic, the address of its name (one `Arc` shared by every list
    /// of a group, alive while the group is): where its frame lies in
    /// `bytes`.
    at: HashMap<usize, Range<usize>, foldhash::fast::RandomState>,
}

impl SnapshotFrames {
    fn key(topic: &Arc<str>) -> usize {
        Arc::as_ptr(topic) as *const u8 as usize
    }

    /// The frame encoded for `topic` in this group, if any.
    pub fn get(&self, topic: &Arc<str>) -> Option<&[u8]> {
        let r = self.at.get(&Self::key(topic))?;
        Some(&self.bytes[r.clone()])
    }

    /// Keeps `frame`, encoded for `topic`, for the rest of the group.
    pub fn put(&mut self, topic: &Arc<str>, frame: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.at.insert(Self::key(topic), start..self.bytes.len());
    }

    /// Forgets the group's frames (the next group's topics may reuse the
    /// addresses), keeping the capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.at.clear();
    }
}
