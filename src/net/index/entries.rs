//! Making a topic's entry in a shard index, with the wildcard subscribers
//! that cover it, and enrolling a member in an entry.

use super::{LocalTopic, Member, ShardIndex};
use crate::model::format::Format;
use std::collections::BTreeSet;
use std::sync::Arc;

impl ShardIndex {
    /// The topic's entry, made (with the wildcard subscribers that cover it,
    /// in `generation` when known) if this shard has none yet.
    pub(super) fn entry(&mut self, topic: &Arc<str>, generation: Option<u16>) -> &mut LocalTopic {
        if !self.topics.contains_key(topic) {
            // Not in the topic table (no generation known): no value yet.
            let unvalued = generation.is_none();
            let lt = LocalTopic {
                generation: generation.unwrap_or(0),
                unvalued,
                ..LocalTopic::default()
            };
            self.topics.insert(topic.clone(), lt);
            if unvalued {
                self.unvalued.insert(topic.clone());
            }
            // Usually there already (names stay when entries go).
            if !self.names.contains(topic) {
                self.names.insert(topic.clone());
            }
            if crate::model::book::is_book(topic) {
                self.book_names.insert(topic.clone());
            }
            // `generation` is known when the topic table holds the topic.
            self.attach_prefix_members(topic, generation.is_some());
        }
        self.topics.get_mut(topic).expect("inserted above")
    }

    /// A topic entry is being created: wildcard subscribers that cover it join
    /// it. Their interest reached the topic table through the prefix, so every
    /// update of this topic has been or will be sent to this shard.
    /// `in_table`: the topic table holds the topic. A wildcard still joining
    /// waits for its join to reach such a topic (and send its snapshot);
    /// one the table does not hold yet has no value and no snapshot, and
    /// the join, which walks the table, would never reach it: the member
    /// joins at once and receives it from seq 1.
    ///
    /// When every join of a pattern under way is behind the topic (as when
    /// the entry is made by the join walking ahead), the members taken in
    /// are those whose join ended, known without looking at the joins
    /// (`LocalPrefix::taken_in_at_once`). Otherwise linear in the wildcard
    /// members and the joins under way, not their product: when many
    /// wildcard subscribers reconnect together, every topic is made again
    /// with all of them joining (40 of each in the soak, for each of
    /// 20,000 topics).
    fn attach_prefix_members(&mut self, topic: &Arc<str>, in_table: bool) {
        let mut joiners: Vec<(usize, Format)> = Vec::new();
        let mut waiting: Vec<usize> = Vec::new();
        for (p, lp) in &self.prefixes {
            if !topic.starts_with(&**p) {
                continue;
            }
            // A wildcard still joining existing topics takes this one in
            // when its join reaches it, with a snapshot.
            if !in_table {
                joiners.extend(&lp.members);
                continue;
            }
            if let Some(free) = lp.taken_in_at_once(topic) {
                joiners.extend(free);
                continue;
            }
            // Some join may have passed it: each is looked at.
            waiting.clear();
            waiting.extend(
                self.joining
                    .iter()
                    .filter(|j| {
                        *j.prefix == **p && j.through.as_deref().is_none_or(|at| **topic > *at)
                    })
                    .map(|j| j.token),
            );
            waiting.sort_unstable();
            let free = lp
                .members
                .iter()
                .filter(|(t, _)| waiting.binary_search(t).is_err());
            joiners.extend(free);
        }
        // Listed once however many of its wildcards cover the topic.
        joiners.sort_unstable_by_key(|(t, _)| *t);
        joiners.dedup_by_key(|(t, _)| *t);
        let lt = self.topics.get_mut(topic).expect("caller inserted it");
        lt.paced.members_changed();
        for &(token, fmt) in &joiners {
            lt.counts[fmt.index()] += 1;
            lt.members.push(Member::new(token, fmt, 0, lt.generation));
            self.memberships += 1;
        }
    }

    /// The topic (which has an entry) holds no value in the topic table:
    /// a wildcard subscribe joins it at once.
    pub(super) fn mark_unvalued(&mut self, topic: &Arc<str>) {
        if let Some(lt) = self.topics.get_mut(topic) {
            mark_unvalued(lt, &mut self.unvalued, topic);
        }
    }
}

/// `ShardIndex::mark_unvalued` on an entry in hand (`unvalued`: the
/// index's set of such topics).
pub(super) fn mark_unvalued(
    lt: &mut LocalTopic,
    unvalued: &mut BTreeSet<Arc<str>>,
    topic: &Arc<str>,
) {
    if !lt.unvalued {
        lt.unvalued = true;
        unvalued.insert(topic.clone());
    }
}

impl LocalTopic {
    /// Makes `member` a member, or, if its connection is one already,
    /// starts that membership again from `member`. True when it is new.
    pub(super) fn enrol(&mut self, member: Member) -> bool {
        self.paced.members_changed();
        match self.members.iter_mut().find(|m| m.key() == member.key()) {
            Some(m) => {
                *m = member;
                false
            }
            None => {
                self.counts[member.fmt.index()] += 1;
                self.members.push(member);
                true
            }
        }
    }
}
