//! A shard's own index: which of its connections receive which topic.
//!
//! Invariant: connection `c` is a member of topic `t` here exactly when one of
//! `c`'s subscriptions covers `t` and `t` has an entry in this shard's index.
//! Every path keeps it: a new entry takes in the wildcard subscribers that cover
//! it, a new wildcard joins every entry it covers, and a member leaves only when
//! nothing of its own covers the topic any more. A member is listed once
//! however many subscriptions cover the topic, so a client never gets an
//! update twice. An exact subscription always has its entry and its interest
//! in the topic table, even when a wildcard covers it already, so it outlives
//! that wildcard.
//!
//! The shard's interest bit in the topic table follows the member counts: it is
//! set while any member wants that format.

mod books;
mod entries;
mod joins;
mod leaves;
mod member;
mod prefix;
mod together;

use joins::receives;
pub(crate) use leaves::Gate;
pub(crate) use member::{member_key, token_of, Member, UNRESOLVED};
use prefix::LocalPrefix;

use super::subscriptions::Subscriptions;
use crate::engine::history::Past;
use crate::engine::interest::InterestBook;
use crate::engine::selector::Selector;
use crate::engine::table::{ResumeFrom, SinceMap, Snapshot, TopicSlot, TopicTable};
use crate::model::format::Format;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct LocalTopic {
    pub members: Vec<Member>,
    /// The rate-cap groups of its members (`net::pace_group`), one per
    /// interval in use; empty for a topic nobody here receives capped.
    pub paced: crate::net::pace_group::Groups,
    counts: [u32; Format::COUNT],
    /// The clear count of the last event this shard handled for the topic
    /// (or that its first member joined in).
    pub generation: u16,
    /// In `ShardIndex::unvalued`: the topic holds no value (tracked ahead
    /// of its first update, or cleared since).
    unvalued: bool,
    /// Its slot in the topic table, once a join has met it: the table never
    /// drops a slot, so withdrawing this shard's interest when the last
    /// member leaves locks the slot alone, without a search of the table by
    /// name (10% of the shards' time in the soak's reconnect waves).
    slot: Option<Arc<TopicSlot>>,
}

/// Is generation `a` later than `b`? (Wrapping: clears are far fewer than
/// 32,768 apart while any event is in flight.)
pub(crate) fn later(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// What a connection that just started to receive a topic is owed: its
/// snapshot, or, when it resumed and the history still held everything it
/// missed, exactly those updates (`replay`).
pub(crate) struct NewlyMatched {
    pub topic: Arc<str>,
    pub snapshot: Snapshot,
    pub replay: Option<Vec<Past>>,
    /// A trade topic's snapshot: its last trades.
    pub trades: Option<Vec<Past>>,
    /// A book topic's snapshot: its top levels.
    pub book: Option<Box<crate::engine::table::BookView>>,
}

/// A wildcard subscription still joining the topics that existed when it
/// was made; topics named up to `through` are done.
pub(super) struct PrefixJoin {
    token: usize,
    fmt: Format,
    prefix: Arc<str>,
    through: Option<Arc<str>>,
}

/// Existing topics one wildcard subscription joins per chunk.
const JOIN_CHUNK: usize = 512;

pub(crate) struct ShardIndex {
    shard: usize,
    /// Wildcard subscriptions whose existing topics are still being joined.
    joining: Vec<PrefixJoin>,
    /// Memberships still being withdrawn.
    leaves: leaves::Leaves,
    pub topics: crate::net::topic_map::TopicMap<LocalTopic>,
    /// The names of `topics`, ordered, so the topics under a pattern are a
    /// range scan, not a pass over every topic of the shard. A name stays
    /// when its entry goes, so this holds every topic the shard has had an
    /// entry for: at most the topic table's topics, which the table keeps
    /// anyway. A subscriber of `*` that is a topic's only member makes and
    /// drops its entry each time it comes and goes, and in the soak's ramp
    /// inserting and removing those names in the sorted set was 14% of the
    /// shards' time. A walk meets a name without an entry as one look-up.
    names: BTreeSet<Arc<str>>,
    /// The book topics among `names`, so a depth change under a pattern
    /// looks at books only, not every topic under it.
    book_names: BTreeSet<Arc<str>>,
    /// The topics among `names` that hold no value: tracked before their
    /// first update (a client asked ahead of it) with no event seen since,
    /// or cleared. What a wildcard joins at once. Kept apart so a
    /// wildcard subscribe does not look up every tracked topic in the table
    /// (20,000 lookups took 15-35 ms of a shard's turn in the soak).
    unvalued: BTreeSet<Arc<str>>,
    prefixes: crate::net::topic_map::TopicMap<LocalPrefix>,
    /// Members of all topics together (for the memory estimate in `/metrics`).
    memberships: usize,
    /// The server's count of who subscribes to what (interest events).
    interest: Option<Arc<InterestBook>>,
    /// Held-back updates of rate-cap groups dropped with their topic's
    /// entry since the shard last asked.
    dropped_holds: u64,
}

/// The names in `names` that start with `prefix`.
fn names_under<'a>(
    names: &'a BTreeSet<Arc<str>>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a Arc<str>> + 'a {
    names_after(names, prefix, None)
}

/// The names in `names` that start with `prefix` and follow `after`.
fn names_after<'a>(
    names: &'a BTreeSet<Arc<str>>,
    prefix: &'a str,
    after: Option<&'a str>,
) -> impl Iterator<Item = &'a Arc<str>> + 'a {
    let start = after.map_or(Bound::Included(prefix), Bound::Excluded);
    names
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(move |n| n.starts_with(prefix))
}

impl ShardIndex {
    pub fn new(shard: usize) -> Self {
        ShardIndex {
            shard,
            joining: Vec::new(),
            leaves: Default::default(),
            topics: Default::default(),
            names: BTreeSet::new(),
            book_names: BTreeSet::new(),
            unvalued: BTreeSet::new(),
            prefixes: Default::default(),
            memberships: 0,
            interest: None,
            dropped_holds: 0,
        }
    }

    /// Counts this shard's subscriptions in the server's interest book.
    pub fn with_interest(mut self, book: Arc<InterestBook>) -> Self {
        self.interest = Some(book);
        self
    }

    /// Subscribers per topic on this shard (for `/admin/topics`).
    pub fn subscriber_counts(&self) -> Vec<(Arc<str>, u32)> {
        let topics = self.topics.iter();
        topics
            .map(|(t, lt)| (t.clone(), lt.members.len() as u32))
            .collect()
    }

    /// (topic entries, memberships): what the index holds, for `/metrics`.
    pub fn size(&self) -> (usize, usize) {
        (self.topics.len(), self.memberships)
    }

    /// Subscribes `token` to one exact topic. Returns the snapshot to send when
    /// the topic exists and the connection did not receive it already.
    pub fn add_exact(
        &mut self,
        table: &TopicTable,
        token: usize,
        fmt: Format,
        subs: &mut Subscriptions,
        topic: Arc<str>,
        since: Option<&ResumeFrom>,
    ) -> Option<NewlyMatched> {
        let covered = self.receives(subs, token, &topic);
        // The exact interest is registered even when a wildcard covers the
        // topic already, so this subscription outlives that wildcard.
        let joined = table.join_exact(&topic, self.shard, fmt, since);
        // Share the table's copy of the name: thousands of subscribers of one
        // topic then hold one allocation, not one each.
        let topic = joined.as_ref().map_or(topic, |(slot, _)| slot.name.clone());
        if subs.exact.insert(topic.clone()) {
            if let Some(book) = &self.interest {
                book.add(&Selector::Exact(topic.clone()));
            }
        }
        if covered {
            // Already receiving it (exactly or through a wildcard): no
            // snapshot. Not a member yet only for a topic created after the
            // wildcard joined and not delivered here yet; making its entry
            // takes in the wildcard's subscribers. All its updates are on
            // their way to this shard, so they skip nothing.
            let generation = joined.as_ref().map(|(_, j)| j.generation);
            let lt = self.entry(&topic, generation);
            if !lt.members.iter().any(|m| m.key() == token) {
                let g = lt.generation;
                self.attach(topic, Member::new(token, fmt, 0, g));
            }
            return None;
        }
        let skip = joined.as_ref().map_or(0, |(_, j)| j.snapshot.seq);
        let generation = joined.as_ref().map(|(_, j)| j.generation);
        let g = self.entry(&topic, generation).generation;
        if skip == 0 {
            self.mark_unvalued(&topic);
        }
        let member = Member::new(token, fmt, skip, generation.unwrap_or(g));
        // A membership it holds but does not receive (one being withdrawn,
        // or a topic it had exactly under a wildcard still joining) starts
        // again from this snapshot.
        self.enrol(topic.clone(), member);
        // A slot the router has just made may not hold its first value yet
        // (seq 0): then there is nothing to send, and nothing to skip.
        joined
            .filter(|(_, j)| j.snapshot.seq > 0)
            .map(|(_, j)| NewlyMatched {
                topic,
                snapshot: j.snapshot,
                replay: j.replay,
                trades: j.trades,
                book: j.book,
            })
    }

    /// Subscribes `token` to every topic under `prefix`, present and future.
    ///
    /// Bounded work, whatever the number of topics under the prefix: it
    /// registers the prefix (so every topic created from now on reaches this
    /// shard and takes the member in), joins at once only the topics named in
    /// `since` (so the ack can say which were recovered) and the tracked
    /// topics that have no value yet; the other existing topics are joined,
    /// each with its snapshot, by [`ShardIndex::advance_joins`], a chunk per
    /// loop turn. Until its chunk comes, a topic does not reach this member
    /// at all (no update before its snapshot). Returns the snapshots and
    /// replays owed now.
    pub fn add_prefix(
        &mut self,
        table: &TopicTable,
        token: usize,
        fmt: Format,
        subs: &mut Subscriptions,
        prefix: Arc<str>,
        since: &SinceMap,
    ) -> Vec<NewlyMatched> {
        if subs.has_prefix(&prefix) {
            return Vec::new();
        }
        table.register_prefix(&prefix, self.shard, fmt);
        let mut fresh = Vec::new();
        let resumed = since.iter().filter(|(t, _)| t.starts_with(&*prefix));
        for (name, from) in resumed {
            if self.receives(subs, token, name) {
                continue;
            }
            let Some((slot, joined)) = table.join_existing(name, self.shard, fmt, Some(from))
            else {
                continue;
            };
            fresh.extend(self.join_one(token, fmt, subs, &slot, joined));
        }
        // Topics this shard tracks that hold no value yet (other clients
        // subscribed to them ahead of their first update): none of their
        // updates is sequenced yet, so this member skips nothing.
        let valueless: Vec<Arc<str>> = names_under(&self.unvalued, &prefix)
            .filter(|n| table.snapshot(n).is_none())
            .cloned()
            .collect();
        for name in valueless {
            let Some(lt) = self.topics.get(&name) else {
                continue;
            };
            let member = Member::new(token, fmt, 0, lt.generation);
            self.enrol(name, member);
        }
        subs.add_prefix(prefix.clone());
        if let Some(book) = &self.interest {
            book.add(&Selector::Prefix(prefix.clone()));
        }
        self.prefixes
            .entry(prefix.clone())
            .or_default()
            .add(token, fmt);
        self.joining.push(PrefixJoin {
            token,
            fmt,
            prefix,
            through: None,
        });
        fresh
    }

    /// Unsubscribes `token` from one exact topic (no-op if not subscribed).
    pub fn remove_exact(
        &mut self,
        table: &TopicTable,
        token: usize,
        fmt: Format,
        subs: &mut Subscriptions,
        topic: &str,
    ) {
        if !subs.exact.remove(topic) {
            return;
        }
        if let Some(book) = &self.interest {
            book.remove([&Selector::Exact(topic.into())]);
        }
        if !subs.covers(topic) {
            self.detach(table, topic, token, fmt);
        }
    }

    /// Unsubscribes `token` from a prefix pattern (no-op if not subscribed).
    ///
    /// Bounded work, whatever the number of topics under the prefix: the
    /// pattern stops taking in new topics now, and the memberships it made
    /// are withdrawn by [`ShardIndex::advance_leaves`], a chunk per loop
    /// turn; until then they are stale and the delivery pass skips them.
    pub fn remove_prefix(
        &mut self,
        table: &TopicTable,
        token: usize,
        fmt: Format,
        subs: &mut Subscriptions,
        prefix: &str,
    ) {
        if !subs.remove_prefix(prefix) {
            return;
        }
        if let Some(book) = &self.interest {
            book.remove([&Selector::Prefix(prefix.into())]);
        }
        self.joining
            .retain(|j| !(j.token == token && &*j.prefix == prefix));
        let furthest = self.furthest(prefix);
        let Some((prefix, lp)) = self.prefixes.get_key_value(prefix) else {
            return;
        };
        let prefix = prefix.clone();
        if lp.members.iter().any(|(t, _)| *t == token) {
            self.leaves.push(
                token,
                fmt,
                leaves::Scope::Prefix {
                    prefix: prefix.clone(),
                    through: None,
                },
            );
        }
        if let Some(lp) = self.prefixes.get_mut(&prefix) {
            lp.remove(token, fmt, furthest);
            if lp.counts[fmt.index()] == 0 {
                table.leave_prefix(&prefix, self.shard, fmt);
            }
            if lp.members.is_empty() {
                self.prefixes.remove(&prefix);
            }
        }
    }

    /// Removes every subscription of a closing connection, in bounded work:
    /// its memberships are withdrawn a chunk per loop turn (see
    /// [`ShardIndex::remove_prefix`]); a connection that is not open gets
    /// no deliveries meanwhile.
    pub fn remove_all(
        &mut self,
        table: &TopicTable,
        token: usize,
        fmt: Format,
        subs: &mut Subscriptions,
    ) {
        let prefixes: Vec<Arc<str>> = subs.prefixes().to_vec();
        for p in prefixes {
            self.remove_prefix(table, token, fmt, subs, &p);
        }
        let exact = subs.exact.take_all();
        if let Some(book) = &self.interest {
            let sels: Vec<Selector> = exact.iter().cloned().map(Selector::Exact).collect();
            book.remove(&sels);
        }
        if !exact.is_empty() {
            self.leaves.push(token, fmt, leaves::Scope::Exact(exact));
        }
    }

    /// The members of a topic an event arrived for (in the topic's clear
    /// count `generation`), with what tells a stale membership from a live
    /// one. A topic this shard has not seen yet is joined by the wildcard
    /// subscribers whose prefix covers it; none of its updates can have
    /// reached them before, so they skip nothing. `valued`: the topic holds
    /// a value after this event (anything but a clear).
    pub fn members_for(
        &mut self,
        topic: &Arc<str>,
        generation: u16,
        valued: bool,
    ) -> Option<(&mut LocalTopic, Gate<'_>)> {
        // Two lookups per event for a topic the shard knows (the common
        // case), not four: `entry` only for a topic it has not seen.
        if !self.topics.contains_key(topic) {
            if !self.prefixes.keys().any(|p| topic.starts_with(&**p)) {
                return None;
            }
            self.entry(topic, Some(generation));
        }
        let lt = self.topics.get_mut(topic)?;
        if lt.unvalued == valued {
            // One flag test per event; the set changes at a topic's first
            // update and at a clear.
            lt.unvalued = !valued;
            if valued {
                self.unvalued.remove(topic);
            } else {
                self.unvalued.insert(topic.clone());
            }
        }
        let gate = Gate {
            joining: &self.joining,
            leaves: &self.leaves,
        };
        Some((lt, gate))
    }

    /// Rate-cap groups' held-back updates dropped with their topic's entry
    /// (everyone left) since the last call.
    pub fn take_dropped_holds(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_holds)
    }

    /// A topic's entry and its gate, looked up only (a rate cap's slot).
    pub fn topic_mut(&mut self, topic: &str) -> Option<(&mut LocalTopic, Gate<'_>)> {
        let lt = self.topics.get_mut(topic)?;
        let gate = Gate {
            joining: &self.joining,
            leaves: &self.leaves,
        };
        Some((lt, gate))
    }

    fn attach(&mut self, topic: Arc<str>, member: Member) {
        let lt = self.entry(&topic, Some(member.generation));
        lt.counts[member.fmt.index()] += 1;
        lt.members.push(member);
        lt.paced.members_changed();
        self.memberships += 1;
    }

    /// Makes `member` a member of `topic`, or, if its connection is one
    /// already, starts that membership again from `member`'s numbering.
    fn enrol(&mut self, topic: Arc<str>, member: Member) {
        let lt = self.entry(&topic, Some(member.generation));
        if lt.enrol(member) {
            self.memberships += 1;
        }
    }
}

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;
