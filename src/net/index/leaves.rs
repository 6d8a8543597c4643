//! Subscriptions being withdrawn, a chunk per loop turn: a wildcard unsubscribe
//! or a closing connection may cover tens of thousands of topics, and
//! detaching them all in one turn would keep every other connection of the
//! shard waiting.
//!
//! Until its chunk comes, a member that is being withdrawn stays in its
//! topic's list but is *stale*: the delivery pass skips it
//! ([`Gate::stale`]), and a new subscription that covers the topic again
//! takes it over with a fresh snapshot instead of adding a second member.
//! A connection that is gone is recognised by its key: the slab slot may
//! be reused at once, but a new connection there has another key (see
//! [`super::member_key`]), so nothing meant for the old one reaches it.

use super::{names_after, receives, PrefixJoin, ShardIndex, JOIN_CHUNK};
use crate::engine::table::TopicTable;
use crate::model::format::Format;
use crate::net::subscriptions::Subscriptions;
use std::collections::HashMap;
use std::sync::Arc;

/// What is being withdrawn.
pub(super) enum Scope {
    /// The topics under a prefix, in name order; those named up to
    /// `through` are done.
    Prefix {
        prefix: Arc<str>,
        through: Option<Arc<str>>,
    },
    /// A closing connection's exact topics, taken from the end.
    Exact(Vec<Arc<str>>),
}

pub(super) struct Leave {
    /// The connections withdrawn (member key and format), by key. Several
    /// when wildcards of one prefix ended before the first of their
    /// withdrawals started (a wave of dashboards disconnecting): one walk
    /// then takes them all out of each topic, with one look-up of the
    /// topic and one pass over its members, where a walk per connection
    /// paid both (two cache misses) per connection and topic.
    keys: Vec<(usize, Format)>,
    scope: Scope,
}

impl Leave {
    fn has(&self, key: usize) -> bool {
        self.keys.binary_search_by_key(&key, |(k, _)| *k).is_ok()
    }
}

/// The withdrawals in progress, and how many each member key has.
#[derive(Default)]
pub(super) struct Leaves {
    list: Vec<Leave>,
    keys: HashMap<usize, u32>,
}

impl Leaves {
    /// A withdrawal of `key`'s memberships in `scope`. One of a prefix
    /// is merged into a withdrawal of the same prefix whose walk has not
    /// started yet, if there is one.
    pub fn push(&mut self, key: usize, fmt: Format, scope: Scope) {
        if let Scope::Prefix {
            prefix,
            through: None,
        } = &scope
        {
            let waiting = self.list.iter_mut().find(
                |l| matches!(&l.scope, Scope::Prefix { prefix: p, through: None } if p == prefix),
            );
            if let Some(l) = waiting {
                if let Err(at) = l.keys.binary_search_by_key(&key, |(k, _)| *k) {
                    l.keys.insert(at, (key, fmt));
                    *self.keys.entry(key).or_default() += 1;
                }
                return;
            }
        }
        *self.keys.entry(key).or_default() += 1;
        let keys = vec![(key, fmt)];
        self.list.push(Leave { keys, scope });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn has(&self, key: usize) -> bool {
        self.keys.contains_key(&key)
    }

    /// Is `key`'s membership of `topic` still to be withdrawn?
    pub fn covers(&self, key: usize, topic: &str) -> bool {
        self.has(key)
            && self.list.iter().any(|l| {
                l.has(key)
                    && match &l.scope {
                        Scope::Prefix { prefix, through } => {
                            topic.starts_with(&**prefix)
                                && through.as_deref().is_none_or(|at| topic > at)
                        }
                        Scope::Exact(left) => left.iter().any(|t| **t == *topic),
                    }
            })
    }

    fn remove(&mut self, i: usize) -> Leave {
        let l = self.list.swap_remove(i);
        for (key, _) in &l.keys {
            self.forget(*key);
        }
        l
    }

    /// One withdrawal of `key` fewer.
    fn forget(&mut self, key: usize) {
        if let Some(n) = self.keys.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&key);
            }
        }
    }

    /// Takes `key` out of withdrawal `i` (the whole withdrawal when it is
    /// its only connection): its format and what is left of its scope.
    fn take_key(&mut self, i: usize, key: usize) -> (Format, Scope) {
        let l = &mut self.list[i];
        if l.keys.len() == 1 {
            let l = self.remove(i);
            return (l.keys[0].1, l.scope);
        }
        let at = l.keys.binary_search_by_key(&key, |(k, _)| *k);
        let (_, fmt) = l.keys.remove(at.expect("has(key)"));
        let scope = match &l.scope {
            Scope::Prefix { prefix, through } => Scope::Prefix {
                prefix: prefix.clone(),
                through: through.clone(),
            },
            // Exact withdrawals are one connection's.
            Scope::Exact(left) => Scope::Exact(left.clone()),
        };
        self.forget(key);
        (fmt, scope)
    }
}

/// What the delivery pass needs to tell a live membership from a stale one,
/// borrowed beside the topic's member list.
pub(crate) struct Gate<'a> {
    pub(super) joining: &'a [PrefixJoin],
    pub(super) leaves: &'a Leaves,
}

impl Gate<'_> {
    /// Is any withdrawal in progress on this shard? (When not, which is
    /// nearly always, the delivery pass checks nothing per member.)
    #[inline]
    pub fn any(&self) -> bool {
        !self.leaves.is_empty()
    }

    /// Is `key`'s membership of `topic` being withdrawn, and not covered by
    /// another of its subscriptions (`subs`)?
    pub fn stale(&self, key: usize, topic: &str, subs: &Subscriptions) -> bool {
        self.leaves.covers(key, topic) && !receives(self.joining, subs, key, topic)
    }
}

impl ShardIndex {
    /// Withdrawals still in progress?
    pub fn leaving(&self) -> bool {
        !self.leaves.is_empty()
    }

    /// Does `key` have withdrawals in progress?
    pub fn has_leaves(&self, key: usize) -> bool {
        self.leaves.has(key)
    }

    pub(super) fn stale(&self, key: usize, topic: &str, subs: &Subscriptions) -> bool {
        self.gate().stale(key, topic, subs)
    }

    pub(super) fn gate(&self) -> Gate<'_> {
        Gate {
            joining: &self.joining,
            leaves: &self.leaves,
        }
    }

    /// Detaches the next memberships being withdrawn, at most `budget`
    /// topics looked at in all. `subs_of(key)` gives the subscriptions of
    /// the connection with that key, or None when it is gone: a member is
    /// detached unless its connection still receives the topic through
    /// another subscription.
    pub fn advance_leaves<'s>(
        &mut self,
        table: &TopicTable,
        mut budget: usize,
        subs_of: impl Fn(usize) -> Option<&'s Subscriptions>,
    ) {
        let mut i = 0;
        let mut gone: Vec<(usize, Format)> = Vec::new();
        while i < self.leaves.list.len() && budget > 0 {
            let chunk = budget.min(JOIN_CHUNK);
            let keys = self.leaves.list[i].keys.clone();
            let names: Vec<Arc<str>> = match &mut self.leaves.list[i].scope {
                Scope::Prefix { prefix, through } => {
                    let names: Vec<Arc<str>> = names_after(&self.names, prefix, through.as_deref())
                        .take(chunk)
                        .cloned()
                        .collect();
                    *through = names.last().cloned().or(through.take());
                    names
                }
                Scope::Exact(left) => left.split_off(left.len().saturating_sub(chunk)),
            };
            budget = budget.saturating_sub(names.len().max(1));
            let done = names.len() < chunk;
            let subs: Vec<_> = keys.iter().map(|(k, _)| subs_of(*k)).collect();
            for t in &names {
                gone.clear();
                for ((key, fmt), subs) in keys.iter().zip(&subs) {
                    if !subs.is_some_and(|s| receives(&self.joining, s, *key, t)) {
                        gone.push((*key, *fmt));
                    }
                }
                if !gone.is_empty() {
                    self.detach_all(table, t, &gone);
                }
            }
            if done {
                self.leaves.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Completes every withdrawal of `key` now. For the rare reuse of a
    /// gone connection's key by a new one (see [`super::member_key`]).
    pub fn finish_leaves(&mut self, table: &TopicTable, key: usize) {
        while self.leaves.has(key) {
            let i = self
                .leaves
                .list
                .iter()
                .position(|l| l.has(key))
                .expect("has(key)");
            let (fmt, scope) = self.leaves.take_key(i, key);
            let names: Vec<Arc<str>> = match scope {
                Scope::Prefix { prefix, through } => {
                    names_after(&self.names, &prefix, through.as_deref())
                        .cloned()
                        .collect()
                }
                Scope::Exact(left) => left,
            };
            for t in names {
                self.detach(table, &t, key, fmt);
            }
        }
    }

    pub(super) fn detach(&mut self, table: &TopicTable, topic: &str, token: usize, fmt: Format) {
        self.detach_all(table, topic, &[(token, fmt)]);
    }

    /// Takes the members of `gone` (by key, sorted) out of `topic`: one
    /// look-up and one pass over its members for all of them.
    fn detach_all(&mut self, table: &TopicTable, topic: &str, gone: &[(usize, Format)]) {
        let Some(lt) = self.topics.get_mut(topic) else {
            return;
        };
        let before = lt.members.len();
        let mut left = [0u32; Format::COUNT];
        lt.members.retain(|m| {
            let leaves = match gone {
                [(key, _)] => m.key() == *key,
                _ => gone.binary_search_by_key(&m.key(), |(k, _)| *k).is_ok(),
            };
            left[m.fmt.index()] += u32::from(leaves);
            !leaves
        });
        if lt.members.len() == before {
            return;
        }
        self.memberships -= before - lt.members.len();
        for fmt in Format::ALL {
            let n = left[fmt.index()];
            if n > 0 {
                lt.counts[fmt.index()] -= n;
                if lt.counts[fmt.index()] == 0 {
                    match &lt.slot {
                        Some(slot) => slot.leave(self.shard, fmt),
                        None => table.leave_exact(topic, self.shard, fmt),
                    }
                }
            }
        }
        if lt.members.is_empty() {
            // What its rate-cap groups held goes with it (uncounted by the
            // shard when it next looks, `take_dropped_holds`).
            self.dropped_holds += lt.paced.iter().filter(|g| g.held().is_some()).count() as u64;
            // Its name stays in `names` (see there).
            self.topics.remove(topic);
            self.unvalued.remove(topic);
            self.book_names.remove(topic);
        }
    }
}
