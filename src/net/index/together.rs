//! Joins that go together (`advance_joins`'s groups) meet each topic of a
//! chunk at once: the topic is looked up once and its members passed over
//! once for all of them, where one join at a time looked it up per join and
//! scanned the members twice per join (40 reconnecting wildcards made that
//! 3,200 comparisons a topic).

use super::{Member, NewlyMatched, ShardIndex};
use crate::engine::table::{Joined, TopicSlot};
use crate::model::format::Format;
use crate::net::subscriptions::Subscriptions;
use std::sync::Arc;

impl ShardIndex {
    /// [`ShardIndex::join_one`] for each of `joins` (connection key and
    /// subscriptions, keys distinct) at topic `name`, with the one snapshot
    /// taken for all; what each is owed goes to `owed[i]`.
    pub(super) fn join_together(
        &mut self,
        fmt: Format,
        joins: &[(usize, &Subscriptions)],
        slot: &Arc<TopicSlot>,
        joined: &Joined,
        owed: &mut [Vec<NewlyMatched>],
    ) {
        if let [(token, subs)] = joins {
            owed[0].extend(self.join_one(*token, fmt, subs, slot, joined.clone()));
            return;
        }
        let name = &slot.name;
        let stale: Vec<bool> = joins
            .iter()
            .map(|(token, subs)| self.stale(*token, name, subs))
            .collect();
        self.entry(name, Some(joined.generation));
        let lt = self.topics.get_mut(name).expect("made above");
        lt.slot.get_or_insert_with(|| slot.clone());
        // Which of them are members already: one pass over the members.
        let mut by_key: Vec<(usize, usize)> = joins
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (*t, i))
            .collect();
        by_key.sort_unstable();
        let mut present: Vec<Option<usize>> = vec![None; joins.len()];
        for (at, m) in lt.members.iter().enumerate() {
            if let Ok(k) = by_key.binary_search_by_key(&m.key(), |(t, _)| *t) {
                present[by_key[k].1] = Some(at);
            }
        }
        let snapshot = joined.snapshot;
        if snapshot.seq == 0 {
            super::entries::mark_unvalued(lt, &mut self.unvalued, name);
        }
        lt.paced.members_changed();
        lt.members.reserve(joins.len());
        for (i, (token, _)) in joins.iter().enumerate() {
            // Receiving it already (another subscription, or a resume):
            // the interest just set stays counted by that membership.
            if present[i].is_some() && !stale[i] {
                continue;
            }
            // A stale membership is started again from this snapshot.
            let member = Member::new(*token, fmt, snapshot.seq, joined.generation);
            match present[i] {
                Some(at) => lt.members[at] = member,
                None => {
                    lt.counts[fmt.index()] += 1;
                    lt.members.push(member);
                    self.memberships += 1;
                }
            }
            if snapshot.seq > 0 {
                owed[i].push(NewlyMatched {
                    topic: name.clone(),
                    snapshot,
                    replay: joined.replay.clone(),
                    trades: joined.trades.clone(),
                    book: joined.book.clone(),
                });
            }
        }
    }
}
