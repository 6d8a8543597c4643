//! A wildcard pattern's subscribers on a shard, with what making a topic's
//! entry needs to know about them without looking at every join under way.
//!
//! Why: a new entry takes in the pattern's members except those whose join
//! of the existing topics has not reached it yet (they get it, with its
//! snapshot, when their join does). Deciding that by comparing the topic
//! with every join's progress cost a string comparison per join per entry:
//! with the soak's 40 subscribers that never read (their joins stay under
//! way), a quarter of the shard's time in its reconnect waves. Most entries
//! are made by a join walking ahead of all the others, so every join under
//! way is behind the topic, and the members taken in are exactly those
//! whose join ended: kept here as a list.

use crate::model::format::Format;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(super) struct LocalPrefix {
    pub members: Vec<(usize, Format)>,
    pub counts: [u32; Format::COUNT],
    /// Members whose join of the existing topics ended.
    finished: Vec<(usize, Format)>,
    /// The furthest any join under way has gone (a bound, never below);
    /// None: none has started, or none is under way. Found again when a
    /// join ends or a member leaves, so the finished walk of one
    /// subscriber does not hold it at the last topic while others stay
    /// under way (the soak's non-readers do).
    ahead: Option<Arc<str>>,
}

impl LocalPrefix {
    /// A member whose join starts now.
    pub fn add(&mut self, token: usize, fmt: Format) {
        self.members.push((token, fmt));
        self.counts[fmt.index()] += 1;
    }

    /// A member leaves; `furthest`: how far the joins left under way have
    /// gone (`ShardIndex::furthest`).
    pub fn remove(&mut self, token: usize, fmt: Format, furthest: Option<Arc<str>>) {
        self.members.retain(|(t, _)| *t != token);
        self.finished.retain(|(t, _)| *t != token);
        self.counts[fmt.index()] -= 1;
        self.ahead = furthest;
    }

    /// A member's join reached the end of the existing topics; `furthest`:
    /// how far the joins left under way have gone.
    pub fn join_ended(&mut self, token: usize, fmt: Format, furthest: Option<Arc<str>>) {
        self.finished.push((token, fmt));
        self.ahead = furthest;
    }

    /// A join is about to go as far as `to`.
    pub fn advancing(&mut self, to: &Arc<str>) {
        if self.ahead.as_deref().is_none_or(|a| **to > *a) {
            self.ahead = Some(to.clone());
        }
    }

    /// The members a new entry of `topic` (a topic in the table) takes in,
    /// when every join under way is behind it: those whose join ended.
    /// None: some join may have passed it; the caller looks at each.
    pub fn taken_in_at_once(&self, topic: &str) -> Option<&[(usize, Format)]> {
        match &self.ahead {
            Some(a) if topic <= &**a => None,
            _ => Some(&self.finished),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_taken_in_at_once_only_while_every_join_is_behind() {
        let mut lp = LocalPrefix::default();
        lp.add(1, Format::Json);
        lp.add(2, Format::MsgPack);
        assert_eq!(lp.taken_in_at_once("W.5"), Some(&[][..]), "none started");
        lp.advancing(&"W.3".into());
        assert_eq!(lp.taken_in_at_once("W.5"), Some(&[][..]));
        assert_eq!(lp.taken_in_at_once("W.3"), None, "a join may be there");
        lp.advancing(&"W.2".into());
        assert_eq!(lp.taken_in_at_once("W.3"), None, "the bound stays");
        // Join 2 ends; join 1 had gone as far as W.2.
        lp.join_ended(2, Format::MsgPack, Some("W.2".into()));
        assert_eq!(
            lp.taken_in_at_once("W.3"),
            Some(&[(2, Format::MsgPack)][..]),
            "the bound follows the joins left"
        );
        assert_eq!(lp.taken_in_at_once("W.2"), None);
        // The last join under way leaves: nothing is behind anything.
        lp.remove(1, Format::Json, None);
        assert_eq!(
            lp.taken_in_at_once("W.0"),
            Some(&[(2, Format::MsgPack)][..])
        );
        lp.remove(2, Format::MsgPack, None);
        assert!(lp.members.is_empty() && lp.counts == [0, 0]);
        assert_eq!(lp.taken_in_at_once("W.0"), Some(&[][..]));
    }
}
