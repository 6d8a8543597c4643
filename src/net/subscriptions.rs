//! A connection's subscriptions, as the client named them: kept per
//! connection so an unsubscribe or a close knows what to withdraw from the
//! shard's index.

use crate::engine::selector::Selector;
use std::sync::Arc;

/// A connection's subscriptions, as the client named them.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// Exact topics, sorted: a small sorted vector costs a third of a hash
    /// set's memory, and idle connections are most of a server's memory.
    pub exact: ExactSet,
    /// Prefix patterns (`FX.` for `FX.*`).
    pub prefixes: Vec<Arc<str>>,
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    pub fn contains(&self, sel: &Selector) -> bool {
        match sel {
            Selector::Exact(t) => self.exact.contains(t),
            Selector::Prefix(p) => self.prefixes.contains(p),
        }
    }

    /// Does any subscription cover `topic`?
    pub fn covers(&self, topic: &str) -> bool {
        self.exact.contains(topic) || self.prefixes.iter().any(|p| topic.starts_with(&**p))
    }
}

/// A sorted set of topic names.
#[derive(Default)]
pub(crate) struct ExactSet(Vec<Arc<str>>);

impl ExactSet {
    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|t| (**t).cmp(topic))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.find(topic).is_ok()
    }

    /// Adds `topic`; false if it was there.
    pub fn insert(&mut self, topic: Arc<str>) -> bool {
        match self.find(&topic) {
            Ok(_) => false,
            Err(i) => {
                // Exact growth: a connection's subscriptions change rarely and
                // idle connections are most of a server's memory.
                self.0.reserve_exact(1);
                self.0.insert(i, topic);
                true
            }
        }
    }

    /// Removes `topic`; false if it was not there.
    pub fn remove(&mut self, topic: &str) -> bool {
        match self.find(topic) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter()
    }
}
