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
    key: usize,
    fmt: Format,
    scope: Scope,
}

/// The withdrawals in progress, and how many each member key has.
#[derive(Default)]
pub(super) struct Leaves {
    list: Vec<Leave>,
    keys: HashMap<usize, u32>,
}

impl Leaves {
    pub fn push(&mut self, key: usize, fmt: Format, scope: Scope) {
        *self.keys.entry(key).or_default() += 1;
        self.list.push(Leave { key, fmt, scope });
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
                l.key == key
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
        if let Some(n) = self.keys.get_mut(&l.key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&l.key);
            }
        }
        l
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
        while i < self.leaves.list.len() && budget > 0 {
            let chunk = budget.min(JOIN_CHUNK);
            let (key, fmt) = (self.leaves.list[i].key, self.leaves.list[i].fmt);
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
            let subs = subs_of(key);
            for t in &names {
                let keeps = subs.is_some_and(|s| receives(&self.joining, s, key, t));
                if !keeps {
                    self.detach(table, t, key, fmt);
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
                .position(|l| l.key == key)
                .expect("has(key)");
            let l = self.leaves.remove(i);
            let names: Vec<Arc<str>> = match l.scope {
                Scope::Prefix { prefix, through } => {
                    names_after(&self.names, &prefix, through.as_deref())
                        .cloned()
                        .collect()
                }
                Scope::Exact(left) => left,
            };
            for t in names {
                self.detach(table, &t, key, l.fmt);
            }
        }
    }
}
