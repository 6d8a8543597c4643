//! Wildcard subscriptions joining the topics that already exist, a chunk
//! per loop turn, so a subscription to many topics costs bounded time per
//! turn and its snapshots stream out as the client reads.

use super::{Member, NewlyMatched, PrefixJoin, ShardIndex, JOIN_CHUNK};
use crate::engine::table::{Joined, TopicSlot, TopicTable};
use crate::model::format::Format;
use crate::net::subscriptions::Subscriptions;
use std::sync::Arc;

impl ShardIndex {
    /// Makes `token` a member of an existing topic it did not receive yet,
    /// from the snapshot just taken; the snapshot (or replay) is owed.
    /// `subs`: the connection's subscriptions, to tell a membership being
    /// withdrawn (taken over, with the snapshot) from a live one.
    pub(super) fn join_one(
        &mut self,
        token: usize,
        fmt: Format,
        subs: &Subscriptions,
        slot: &Arc<TopicSlot>,
        joined: Joined,
    ) -> Option<NewlyMatched> {
        let name = &slot.name;
        let stale = self.stale(token, name, subs);
        // One look-up when the entry exists, as it mostly does: a wildcard
        // join runs this for every topic under it (20,000 per reconnect in
        // the soak), and looking the topic up four times was most of it.
        let lt = match self.topics.get_mut(name) {
            Some(lt) => lt,
            None => {
                self.entry(name, Some(joined.generation));
                self.topics.get_mut(name).expect("made above")
            }
        };
        lt.slot.get_or_insert_with(|| slot.clone());
        if !stale && lt.members.iter().any(|m| m.key() == token) {
            // Receiving it already (another subscription, or a resume):
            // the interest just set stays counted by that membership.
            return None;
        }
        let snapshot = joined.snapshot;
        if snapshot.seq == 0 {
            super::entries::mark_unvalued(lt, &mut self.unvalued, name);
        }
        // A stale membership is started again from this snapshot.
        let member = Member::new(token, fmt, snapshot.seq, joined.generation);
        if lt.enrol(member) {
            self.memberships += 1;
        }
        (snapshot.seq > 0).then(|| NewlyMatched {
            topic: name.clone(),
            snapshot,
            replay: joined.replay,
            trades: joined.trades,
            book: joined.book,
        })
    }

    /// Does the connection receive `topic` through its subscriptions now?
    /// (See [`receives`].)
    pub(super) fn receives(&self, subs: &Subscriptions, token: usize, topic: &str) -> bool {
        receives(&self.joining, subs, token, topic)
    }

    /// How far the joins of `prefix` under way have gone.
    pub(super) fn furthest(&self, prefix: &str) -> Option<Arc<str>> {
        let under_way = self.joining.iter().filter(|j| *j.prefix == *prefix);
        under_way.filter_map(|j| j.through.clone()).max()
    }

    /// Wildcard subscriptions still joining existing topics?
    pub fn joining(&self) -> bool {
        !self.joining.is_empty()
    }

    /// Joins the next existing topics of the wildcard subscriptions still
    /// joining, at most `budget` topics in all, in name order per
    /// subscription; `ready(key)` gives the subscriptions of a connection
    /// that can take its snapshots now (its queue is below the conflation
    /// mark), so snapshots stream out as the socket drains. Returns the
    /// snapshots owed, by group and connection, and whether a connection
    /// that was ready has more to join (else the rest wait for their
    /// connections to drain, which a write event reports).
    ///
    /// Joins of one pattern and format at the same place go together
    /// ([`OwedGroup`]): the table is walked, each topic's slot locked, its
    /// snapshot copied and its entry looked up once for all of them, and
    /// the shard encodes each snapshot once. Clients whose subscribes reach
    /// the shard in one turn (a reconnect wave of `*` subscribers) start
    /// at the same place; per client and topic those steps were most of a
    /// wave's cost (`examples/reconnect_wave`). Clients that arrive turns
    /// apart start apart and stay so.
    pub fn advance_joins<'s>(
        &mut self,
        table: &TopicTable,
        mut budget: usize,
        ready: impl Fn(usize) -> Option<&'s Subscriptions>,
    ) -> (Vec<OwedGroup>, bool) {
        let mut out = Vec::new();
        let mut more = false;
        let mut i = 0;
        while i < self.joining.len() && budget > 0 {
            if ready(self.joining[i].token).is_none() {
                i += 1;
                continue;
            }
            let group = self.group_at(i, &ready);
            let j = &self.joining[i];
            let (fmt, prefix, after) = (j.fmt, j.prefix.clone(), j.through.clone());
            // A member past the first costs about half a topic: it shares
            // the walk, the lock, the copy and (in the shard) the encoding.
            let per_topic = group.len().div_ceil(2);
            let chunk = (budget / per_topic).clamp(1, JOIN_CHUNK);
            let slots = table.join_under(&prefix, after.as_deref(), chunk, self.shard, fmt);
            budget = budget.saturating_sub((slots.len() * per_topic).max(1));
            let done = slots.len() < chunk;
            let joins: Vec<(usize, &Subscriptions)> = group
                .iter()
                .map(|&k| self.joining[k].token)
                .map(|t| (t, ready(t).expect("ready when grouped")))
                .collect();
            let mut lists: Vec<Vec<NewlyMatched>> = joins
                .iter()
                .map(|_| Vec::with_capacity(slots.len()))
                .collect();
            for (slot, joined) in slots {
                self.join_together(fmt, &joins, &slot, &joined, &mut lists);
                // Progress is marked after: while the topic is ahead of
                // `through`, an entry made for it does not take the member
                // in without its snapshot.
                for &k in &group {
                    self.joining[k].through = Some(slot.name.clone());
                }
                // The pattern's bound follows (`LocalPrefix::ahead`): while
                // making this topic's entry, the walk was behind it.
                if let Some(lp) = self.prefixes.get_mut(&prefix) {
                    lp.advancing(&slot.name);
                }
            }
            let mut owed: Vec<(usize, Vec<NewlyMatched>)> =
                joins.iter().map(|(t, _)| *t).zip(lists).collect();
            owed.retain(|(_, fresh)| !fresh.is_empty());
            if !owed.is_empty() {
                out.push(OwedGroup { fmt, owed });
            }
            if done {
                self.end_joins(&group, &prefix, fmt);
            } else {
                // Together from now on, where the first was.
                for (n, &k) in group.iter().enumerate().skip(1) {
                    let j = self.joining.remove(k);
                    self.joining.insert(i + n, j);
                }
                more = true;
                i += group.len();
            }
        }
        // Out of budget before every join was looked at.
        more |= i < self.joining.len();
        // Those looked at go to the back: the next turn starts with the
        // others, so the first few cannot take every turn's budget while
        // the rest wait.
        self.joining.rotate_left(i);
        (out, more)
    }

    /// The joins that go with `joining[i]` (its index first, then in list
    /// order): same pattern, format and place, their connections ready.
    fn group_at<'s>(
        &self,
        i: usize,
        ready: &impl Fn(usize) -> Option<&'s Subscriptions>,
    ) -> Vec<usize> {
        let j = &self.joining[i];
        let mut group = vec![i];
        for (k, o) in self.joining.iter().enumerate().skip(i + 1) {
            if group.len() == MAX_GROUP {
                break;
            }
            let alike = o.prefix == j.prefix && o.fmt == j.fmt && o.through == j.through;
            if alike && ready(o.token).is_some() {
                group.push(k);
            }
        }
        group
    }

    /// The joins at `group` (ascending indices) reached the end of their
    /// pattern's topics.
    fn end_joins(&mut self, group: &[usize], prefix: &Arc<str>, fmt: Format) {
        let tokens: Vec<usize> = group.iter().map(|&k| self.joining[k].token).collect();
        for &k in group.iter().rev() {
            self.joining.remove(k);
        }
        let furthest = self.furthest(prefix);
        if let Some(lp) = self.prefixes.get_mut(prefix) {
            for token in tokens {
                lp.join_ended(token, fmt, furthest.clone());
            }
        }
    }
}

/// Most joins that go together: bounds the work of one topic of a chunk.
const MAX_GROUP: usize = 64;

/// Snapshots owed to joins that went together (`advance_joins`): every
/// connection's list holds, in order, some of the same topics, and a topic
/// in two lists has the same snapshot in both (one `Joined`, cloned), so
/// the shard may encode it once for the group.
pub(crate) struct OwedGroup {
    pub fmt: Format,
    /// By connection (member key): its snapshots owed.
    pub owed: Vec<(usize, Vec<NewlyMatched>)>,
}

/// Does the connection with member key `token` receive `topic` through its
/// subscriptions now? As `subs.covers`, except that a wildcard still joining
/// existing topics does not cover those it has not reached yet: it sends
/// their snapshots when it reaches them, and until then sends them nothing.
pub(super) fn receives(
    joining: &[PrefixJoin],
    subs: &Subscriptions,
    token: usize,
    topic: &str,
) -> bool {
    if !subs.covers(topic) {
        return false;
    }
    if joining.iter().all(|j| j.token != token) {
        return true;
    }
    subs.exact.contains(topic)
        || subs.prefixes().iter().any(|p| {
            topic.starts_with(&**p)
                && !joining.iter().any(|j| {
                    j.token == token
                        && j.prefix == *p
                        && j.through.as_deref().is_none_or(|at| topic > at)
                })
        })
}
