//! The index's part in order-book depth changes (`net::shard::books`):
//! which books a connection receives under a pattern, and restarting its
//! membership from a fresh snapshot.

use super::{names_under, ShardIndex};
use std::sync::Arc;

impl ShardIndex {
    /// The book topics under `prefix` that connection `key` is a member of.
    pub fn books_under(&self, prefix: &str, key: usize) -> Vec<Arc<str>> {
        names_under(&self.book_names, prefix)
            .filter(|n| {
                let lt = self.topics.get(*n);
                lt.is_some_and(|lt| lt.members.iter().any(|m| m.key() == key))
            })
            .cloned()
            .collect()
    }

    /// A member that is sent a fresh snapshot (`seq`, in numbering
    /// `generation`) skips what that snapshot holds.
    pub fn restart_member(&mut self, topic: &str, key: usize, seq: u64, generation: u16) {
        if let Some(lt) = self.topics.get_mut(topic) {
            for m in lt.members.iter_mut().filter(|m| m.key() == key) {
                m.skip_through = seq;
                m.generation = generation;
                m.class = super::UNRESOLVED;
            }
        }
    }
}
