//! Joins of one pattern at one place go together (`advance_joins`), and
//! part when one connection stops taking snapshots.

use super::tests::{join_all, table_of};
use super::*;
use std::cell::Cell;

#[test]
fn joins_at_one_place_go_together_and_part_when_one_stops_reading() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let mut subs: Vec<Subscriptions> = (0..4).map(|_| Subscriptions::default()).collect();
    let none = SinceMap::new();
    for (key, s) in subs.iter_mut().enumerate() {
        index.add_prefix(&table, key, Format::Json, s, "W.".into(), &none);
    }
    // Key 3 stops taking snapshots after the first turn, and takes them
    // again once the others are done.
    let key3_reads = Cell::new(true);
    let mut got: Vec<Vec<Arc<str>>> = vec![Vec::new(); 4];
    let (mut sizes, mut first_turn) = (Vec::new(), 0);
    for turn in 0..100 {
        if turn == 1 {
            key3_reads.set(false);
            first_turn = got[3].len();
        }
        if !index.joining() {
            break;
        }
        if index.joining.iter().all(|j| j.token == 3) {
            key3_reads.set(true);
        }
        let ready = |k: usize| (k != 3 || key3_reads.get()).then(|| &subs[k]);
        for group in index.advance_joins(&table, 1_024, ready).0 {
            sizes.push(group.owed.len());
            for (key, fresh) in group.owed {
                got[key].extend(fresh.into_iter().map(|nm| nm.topic));
            }
        }
    }
    assert!(!index.joining(), "every join ended");
    // Together at first, then three, then key 3 alone from where it was.
    assert_eq!(sizes[0], 4, "{sizes:?}");
    assert!(sizes[1..].contains(&3), "{sizes:?}");
    assert_eq!(sizes.last(), Some(&1), "{sizes:?}");
    // Each got every topic once, in order, whatever group it was in.
    let all: Vec<String> = (0..1_500).map(|i| format!("W.{i:04}")).collect();
    for (key, names) in got.iter().enumerate() {
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        assert_eq!(names, all, "key {key}");
        assert_eq!(
            index.topics["W.0700"]
                .members
                .iter()
                .filter(|m| m.key() == key)
                .count(),
            1
        );
    }
    // A member past the first costs half a topic: the first turn's budget
    // of 1,024 took four joins 512 topics each.
    assert_eq!(first_turn, 512);
}

/// The shard's interest in a topic (JSON) as the router sees it at its
/// next update.
fn heard_by(table: &TopicTable, topic: &str, shard: usize) -> bool {
    let slot = table.get_or_create(topic);
    let applied = slot.apply(1, &Default::default(), 0, std::time::Instant::now());
    applied.interest[Format::Json.index()] & (1 << shard) != 0
}

#[test]
fn the_last_member_leaving_withdraws_the_shards_interest_in_the_table() {
    let table = table_of(600);
    let mut index = ShardIndex::new(1);
    let mut subs: Vec<Subscriptions> = (0..2).map(|_| Subscriptions::default()).collect();
    for (key, s) in subs.iter_mut().enumerate() {
        join_all(&table, &mut index, key, s);
    }
    assert!(heard_by(&table, "W.0300", 1));
    let mut leave = |key: usize, index: &mut ShardIndex| {
        index.remove_all(&table, key, Format::Json, &mut subs[key]);
        while index.leaving() {
            index.advance_leaves(&table, 512, |_| None);
        }
    };
    leave(0, &mut index);
    assert!(heard_by(&table, "W.0300", 1), "one member is left");
    leave(1, &mut index);
    assert!(!heard_by(&table, "W.0300", 1), "none is left");
    assert!(!heard_by(&table, "W.0000", 1) && !heard_by(&table, "W.0599", 1));
}
