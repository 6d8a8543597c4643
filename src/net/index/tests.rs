//! The shard index's invariants, on a real topic table.

use super::*;

#[test]
fn no_snapshot_for_a_topic_without_its_first_value() {
    let table = TopicTable::default();
    let slot = table.get_or_create("W.A");
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    assert!(index
        .add_exact(&table, 1, Format::Json, &mut subs, "W.A".into(), None)
        .is_none());
    let mut subs2 = Subscriptions::default();
    let none = SinceMap::new();
    assert!(index
        .add_prefix(&table, 2, Format::Json, &mut subs2, "W.".into(), &none)
        .is_empty());
    // Both are members from seq 1 on, once the value arrives.
    slot.apply(1, &Default::default(), 0, std::time::Instant::now());
    let (lt, _) = index.members_for(&"W.A".into(), 0, true).unwrap();
    let skips: Vec<(usize, u64)> = lt
        .members
        .iter()
        .map(|m| (m.token(), m.skip_through))
        .collect();
    assert_eq!(skips, [(1, 0), (2, 0)]);
}

#[test]
fn an_exact_subscription_under_a_wildcard_keeps_its_interest() {
    let table = TopicTable::default();
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    let none = SinceMap::new();
    index.add_prefix(&table, 1, Format::Json, &mut subs, "N.".into(), &none);
    index.add_exact(&table, 1, Format::Json, &mut subs, "N.A".into(), None);
    index.remove_prefix(&table, 1, Format::Json, &mut subs, "N.");
    // The router creates the topic after the wildcard left: this shard
    // still gets it, for the exact subscription.
    let slot = table.get_or_create("N.A");
    assert_eq!(
        slot.apply(1, &Default::default(), 0, std::time::Instant::now())
            .interest,
        [1, 0]
    );
    let (lt, _) = index.members_for(&"N.A".into(), 0, true).unwrap();
    assert_eq!(lt.members.len(), 1);
}

/// A table of `n` topics `W.0000`…, each holding its first value (seq 1).
pub(super) fn table_of(n: usize) -> TopicTable {
    let table = TopicTable::default();
    for i in 0..n {
        let slot = table.get_or_create(&format!("W.{i:04}"));
        slot.apply(1, &Default::default(), 0, std::time::Instant::now());
    }
    table
}

/// A topic new in the table: the router makes it and its first update
/// reaches the shard. Its members then (key, what each skips), by key.
fn first_update(table: &TopicTable, index: &mut ShardIndex, topic: &str) -> Vec<(usize, u64)> {
    table
        .get_or_create(topic)
        .apply(1, &Default::default(), 0, std::time::Instant::now());
    let (lt, _) = index.members_for(&topic.into(), 0, true).unwrap();
    let mut got: Vec<(usize, u64)> = lt
        .members
        .iter()
        .map(|m| (m.key(), m.skip_through))
        .collect();
    got.sort_unstable();
    got
}

/// `key` subscribes to `W.*` and its join runs to the end; returns the
/// snapshots it was owed.
pub(super) fn join_all(
    table: &TopicTable,
    index: &mut ShardIndex,
    key: usize,
    subs: &mut Subscriptions,
) -> usize {
    let none = SinceMap::new();
    let mut owed = index
        .add_prefix(table, key, Format::Json, subs, "W.".into(), &none)
        .len();
    while index.joining() {
        for group in index.advance_joins(table, 1_000, |_| Some(&*subs)).0 {
            owed += group
                .owed
                .iter()
                .map(|(_, fresh)| fresh.len())
                .sum::<usize>();
        }
    }
    owed
}

/// The member keys of a topic, with what each skips.
fn members(index: &ShardIndex, topic: &str) -> Vec<(usize, u64)> {
    index.topics.get(topic).map_or(Vec::new(), |lt| {
        lt.members
            .iter()
            .map(|m| (m.key(), m.skip_through))
            .collect()
    })
}

#[test]
fn a_wildcard_unsubscribe_withdraws_its_memberships_a_chunk_at_a_time() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    assert_eq!(join_all(&table, &mut index, 1, &mut subs), 1_500);
    index.remove_prefix(&table, 1, Format::Json, &mut subs, "W.");
    // Nothing detached yet, but every membership is stale.
    assert_eq!(index.topics.len(), 1_500);
    assert!(index.gate().stale(1, "W.0000", &subs));
    assert!(index.gate().stale(1, "W.1499", &subs));
    let mut turns = 0;
    while index.leaving() {
        index.advance_leaves(&table, 512, |_| Some(&subs));
        turns += 1;
        assert!(index.topics.len() <= 1_500 - 512 * turns.min(2));
    }
    assert_eq!(turns, 3, "512 topics per turn");
    assert!(index.topics.is_empty());
    // The shard's interest is withdrawn from the table too.
    let slot = table.get_or_create("W.0700");
    let applied = slot.apply(2, &Default::default(), 0, std::time::Instant::now());
    assert_eq!(applied.interest, [0, 0]);
}

#[test]
fn a_wildcard_subscribed_again_during_its_withdrawal_starts_again_from_snapshots() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    join_all(&table, &mut index, 1, &mut subs);
    // An exact subscription inside the wildcard outlives it, live.
    index.add_exact(&table, 1, Format::Json, &mut subs, "W.1400".into(), None);
    index.remove_prefix(&table, 1, Format::Json, &mut subs, "W.");
    assert!(!index.gate().stale(1, "W.1400", &subs));
    index.advance_leaves(&table, 512, |_| Some(&subs));
    assert!(index.leaving());
    // Half withdrawn: the new subscription owes every topic but the exact
    // one its snapshot, once, whether its old membership was detached
    // already or is taken over.
    assert_eq!(join_all(&table, &mut index, 1, &mut subs), 1_499);
    while index.leaving() {
        index.advance_leaves(&table, 512, |_| Some(&subs));
    }
    for i in [0, 511, 512, 1_000, 1_400, 1_499] {
        let topic = format!("W.{i:04}");
        assert_eq!(members(&index, &topic), [(1, 1)], "{topic}");
        assert!(!index.gate().stale(1, &topic, &subs));
    }
}

#[test]
fn an_exact_subscribe_takes_over_a_membership_being_withdrawn() {
    let table = table_of(10);
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    join_all(&table, &mut index, 1, &mut subs);
    index.remove_prefix(&table, 1, Format::Json, &mut subs, "W.");
    let owed = index.add_exact(&table, 1, Format::Json, &mut subs, "W.0003".into(), None);
    assert_eq!(owed.map(|nm| nm.snapshot.seq), Some(1), "its snapshot");
    assert_eq!(members(&index, "W.0003"), [(1, 1)], "one member, not two");
    while index.leaving() {
        index.advance_leaves(&table, 512, |_| Some(&subs));
    }
    assert_eq!(index.topics.len(), 1);
    assert_eq!(members(&index, "W.0003"), [(1, 1)]);
}

#[test]
fn a_gone_connection_is_withdrawn_without_touching_the_next_one_in_its_slot() {
    let table = table_of(1_000);
    let mut index = ShardIndex::new(0);
    let old = member_key(5, 0).unwrap();
    let new = member_key(5, 1).unwrap();
    assert_ne!(old, new);
    assert_eq!(token_of(old), token_of(new), "same slab slot");
    let mut subs_old = Subscriptions::default();
    join_all(&table, &mut index, old, &mut subs_old);
    index.add_exact(
        &table,
        old,
        Format::Json,
        &mut subs_old,
        "W.0002".into(),
        None,
    );
    index.remove_all(&table, old, Format::Json, &mut subs_old);
    assert_eq!(subs_old.len(), 0);
    let mut subs_new = Subscriptions::default();
    let owed = index.add_exact(
        &table,
        new,
        Format::Json,
        &mut subs_new,
        "W.0002".into(),
        None,
    );
    assert!(owed.is_some(), "the new connection gets its own snapshot");
    assert_eq!(members(&index, "W.0002"), [(old, 1), (new, 1)]);
    while index.leaving() {
        index.advance_leaves(&table, 300, |k| (k == new).then_some(&subs_new));
    }
    assert_eq!(members(&index, "W.0002"), [(new, 1)]);
    assert_eq!(index.topics.len(), 1);
    // A key reused while its withdrawal is under way is finished at once.
    let mut subs = Subscriptions::default();
    join_all(&table, &mut index, old, &mut subs);
    index.remove_all(&table, old, Format::Json, &mut subs);
    assert!(index.has_leaves(old));
    index.finish_leaves(&table, old);
    assert!(!index.leaving());
    assert_eq!(index.topics.len(), 1);
}

#[test]
fn wildcard_joins_take_turns() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let mut subs: Vec<Subscriptions> = (0..6).map(|_| Subscriptions::default()).collect();
    let none = SinceMap::new();
    // Six patterns, so that no two joins go together.
    let patterns = ["W.", "W.0", "W.00", "W.01", "W.1", "W.10"];
    for (key, s) in subs.iter_mut().enumerate() {
        index.add_prefix(&table, key, Format::Json, s, patterns[key].into(), &none);
    }
    // Each turn's budget covers two chunks: every join is served within
    // three turns, not only the first two until they are done.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..3 {
        let (owed, more) = index.advance_joins(&table, 1_024, |k| Some(&subs[k]));
        assert!(more);
        assert!(owed.iter().all(|g| g.owed.len() == 1));
        served.extend(owed.iter().flat_map(|g| &g.owed).map(|(k, _)| *k));
    }
    assert_eq!(served.len(), 6, "served: {served:?}");
}

/// The race `tests/concurrency.rs` met (seed 9780877883438514673): a
/// wildcard still joining existing topics, and another connection's exact
/// subscribe to a topic under it that does not exist yet. The topic's
/// entry is made here without the wildcard's member (its join would
/// bring it, with a snapshot); but the join walks the topic table, where
/// the topic is not, so it never did, and the wildcard's subscriber missed
/// the topic's first updates. A topic with no slot has no snapshot to
/// wait for: the member joins at once, from seq 1.
#[test]
fn a_topic_entry_made_during_a_wildcard_join_takes_in_the_wildcard_member() {
    let table = table_of(3);
    let mut index = ShardIndex::new(0);
    let none = SinceMap::new();
    let mut wild = Subscriptions::default();
    // Joining, not advanced yet.
    index.add_prefix(&table, 1, Format::Json, &mut wild, "W.".into(), &none);
    assert!(index.joining());
    let mut exact = Subscriptions::default();
    index.add_exact(&table, 2, Format::Json, &mut exact, "W.NEW".into(), None);
    while index.joining() {
        index.advance_joins(&table, 1_000, |_| Some(&wild));
    }
    assert_eq!(
        first_update(&table, &mut index, "W.NEW"),
        [(1, 0), (2, 0)],
        "the wildcard's subscriber receives W.NEW from seq 1"
    );
}

#[test]
fn a_wildcard_joins_at_once_only_the_topics_without_a_value() {
    let table = table_of(2);
    let mut index = ShardIndex::new(0);
    let none = SinceMap::new();
    // W.0000 holds a value; W.EARLY is asked for ahead of its first update.
    let mut exact = Subscriptions::default();
    index.add_exact(&table, 1, Format::Json, &mut exact, "W.0000".into(), None);
    index.add_exact(&table, 1, Format::Json, &mut exact, "W.EARLY".into(), None);
    let early: Arc<str> = "W.EARLY".into();
    let valued: Arc<str> = "W.0000".into();
    assert_eq!(index.unvalued.iter().collect::<Vec<_>>(), [&early]);
    let mut wild = Subscriptions::default();
    index.add_prefix(&table, 2, Format::Json, &mut wild, "W.".into(), &none);
    let members = |index: &ShardIndex, t: &Arc<str>| -> Vec<usize> {
        index
            .topics
            .get(t)
            .unwrap()
            .members
            .iter()
            .map(|m| m.key())
            .collect()
    };
    assert_eq!(
        members(&index, &early),
        [1, 2],
        "joined at once, from seq 1"
    );
    assert_eq!(
        members(&index, &valued),
        [1],
        "joined by the walk, with a snapshot"
    );
    // Its first update: no longer unvalued. A clear makes it so again.
    index.members_for(&early, 0, true).unwrap();
    assert!(index.unvalued.is_empty());
    index.members_for(&valued, 1, false).unwrap();
    assert_eq!(index.unvalued.iter().collect::<Vec<_>>(), [&valued]);
}

#[test]
fn a_topic_entry_dropped_with_a_held_rate_cap_update_is_reported() {
    let table = table_of(1);
    let mut index = ShardIndex::new(0);
    let mut subs = Subscriptions::default();
    index.add_exact(&table, 1, Format::Json, &mut subs, "W.0000".into(), None);
    let enc = crate::engine::link::Encoded::test_update("W.0000", 2, Default::default(), None);
    let crate::engine::link::Event::Update { ts, prices, .. } = enc.event else {
        unreachable!()
    };
    let (lt, _) = index.members_for(&"W.0000".into(), 0, true).unwrap();
    let now = std::time::Instant::now();
    let group = lt.paced.of(1_000_000);
    group.decide(1, &enc, (ts, &prices), now);
    group.decide(2, &enc, (ts, &prices), now);
    assert!(group.held().is_some(), "the second waits for the slot");
    assert_eq!(index.take_dropped_holds(), 0);
    index.remove_exact(&table, 1, Format::Json, &mut subs, "W.0000");
    assert_eq!(index.take_dropped_holds(), 1, "gone with its entry");
    assert_eq!(index.take_dropped_holds(), 0, "reported once");
}

#[test]
fn a_new_topics_entry_takes_in_finished_wildcards_once_and_leaves_joining_ones_to_their_join() {
    let table = table_of(3);
    let mut index = ShardIndex::new(0);
    let none = SinceMap::new();
    let mut done = Subscriptions::default();
    // Token 1: two wildcards that both cover W.9, joined to the end.
    index.add_prefix(&table, 1, Format::Json, &mut done, "W.".into(), &none);
    index.add_prefix(&table, 1, Format::Json, &mut done, "W.9".into(), &none);
    while index.joining() {
        index.advance_joins(&table, 1_000, |_| Some(&done));
    }
    // Token 3: a wildcard still joining, not past W.9.
    let mut joining = Subscriptions::default();
    index.add_prefix(&table, 3, Format::Json, &mut joining, "W.".into(), &none);
    // W.9 appears.
    assert_eq!(
        first_update(&table, &mut index, "W.9"),
        [(1, 0)],
        "listed once; the joining wildcard waits"
    );
    while index.joining() {
        index.advance_joins(&table, 1_000, |k| {
            Some(if k == 1 { &done } else { &joining })
        });
    }
    assert_eq!(
        members(&index, "W.9"),
        [(1, 0), (3, 1)],
        "its join reached W.9: in from its snapshot"
    );
}

/// A wave of disconnects: wildcards of one prefix whose withdrawals have
/// not started are withdrawn by one walk, each topic looked up once for
/// all of them; one that started earlier goes on alone, and a connection
/// reusing a key finishes only its own part of the shared walk.
#[test]
fn wildcard_withdrawals_not_started_yet_share_one_walk() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let mut subs: Vec<Subscriptions> = (0..4).map(|_| Subscriptions::default()).collect();
    for (key, s) in subs.iter_mut().enumerate() {
        join_all(&table, &mut index, key, s);
    }
    index.remove_all(&table, 0, Format::Json, &mut subs[0]);
    index.advance_leaves(&table, 1_024, |_| None);
    // Key 0's walk has started; 1, 2 and 3 leave together after it.
    for (key, s) in subs.iter_mut().enumerate().skip(1) {
        index.remove_all(&table, key, Format::Json, s);
    }
    index.advance_leaves(&table, 1_024, |_| None);
    let keys = |index: &ShardIndex, t: &str| -> Vec<usize> {
        members(index, t).into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(&index, "W.0000"),
        Vec::<usize>::new(),
        "both walks did it"
    );
    assert_eq!(
        keys(&index, "W.0600"),
        [1, 2, 3],
        "the shared walk is at 512"
    );
    index.advance_leaves(&table, 1_024, |_| None);
    assert_eq!(keys(&index, "W.0600"), Vec::<usize>::new());
    assert_eq!(keys(&index, "W.1400"), [1, 2, 3]);
    assert!(index.gate().stale(2, "W.1400", &subs[2]));
    // Key 2 is reused by a new connection: its part of the shared walk
    // ends now; the others' goes on.
    index.finish_leaves(&table, 2);
    assert!(!index.has_leaves(2) && index.has_leaves(3));
    assert_eq!(keys(&index, "W.1400"), [1, 3]);
    while index.leaving() {
        index.advance_leaves(&table, 512, |_| None);
    }
    assert!(index.topics.is_empty());
    let slot = table.get_or_create("W.1400");
    let applied = slot.apply(2, &Default::default(), 0, std::time::Instant::now());
    assert_eq!(applied.interest, [0, 0], "the shard's interest withdrawn");
}

/// Making entries while a join is stuck part-way (a subscriber that never
/// reads): a topic past every join under way takes in the finished
/// wildcards only, without looking at the joins; one the stuck join has
/// passed (new in the table) takes it in too.
#[test]
fn entries_made_past_a_stuck_join_take_in_only_the_finished_wildcards() {
    let table = table_of(1_500);
    let mut index = ShardIndex::new(0);
    let none = SinceMap::new();
    let mut subs: Vec<Subscriptions> = (0..5).map(|_| Subscriptions::default()).collect();
    let prefix = |s: &mut Subscriptions, index: &mut ShardIndex, key| {
        index.add_prefix(&table, key, Format::Json, s, "W.".into(), &none);
    };
    // Key 2 joins one chunk, then stops reading.
    prefix(&mut subs[2], &mut index, 2);
    index.advance_joins(&table, 512, |k| (k == 2).then_some(&subs[2]));
    // Key 3 joins everything and leaves: the entries past W.0511 go.
    prefix(&mut subs[3], &mut index, 3);
    for _ in 0..3 {
        index.advance_joins(&table, 1_024, |k| (k == 3).then_some(&subs[3]));
    }
    assert_eq!(index.topics.len(), 1_500);
    index.remove_all(&table, 3, Format::Json, &mut subs[3]);
    while index.leaving() {
        index.advance_leaves(&table, 512, |_| None);
    }
    assert_eq!(index.topics.len(), 512);
    // Key 4 walks every topic, making the entries past key 2's join.
    prefix(&mut subs[4], &mut index, 4);
    for _ in 0..3 {
        index.advance_joins(&table, 1_024, |k| (k == 4).then_some(&subs[4]));
    }
    assert_eq!(index.furthest("W.").as_deref(), Some("W.0511"), "key 2's");
    assert_eq!(
        members(&index, "W.1000"),
        [(4, 1)],
        "key 2 waits for its walk"
    );
    assert_eq!(members(&index, "W.0100"), [(2, 1), (4, 1)]);
    // New topics reach the shard: one behind key 2's walk, one past it.
    for (t, want) in [("W.0100A", vec![(2, 0), (4, 0)]), ("W.2000", vec![(4, 0)])] {
        assert_eq!(first_update(&table, &mut index, t), want, "{t}");
    }
}

#[test]
fn entries_made_again_after_a_wave_are_withdrawn_again() {
    // The names stay in the index when the entries go; the next wave makes
    // the entries again, and its withdrawal still finds every one.
    let table = table_of(600);
    let mut index = ShardIndex::new(0);
    for key in [1, 2] {
        let mut subs = Subscriptions::default();
        assert_eq!(join_all(&table, &mut index, key, &mut subs), 600);
        assert_eq!(index.topics.len(), 600);
        let keys: Vec<usize> = members(&index, "W.0599").iter().map(|m| m.0).collect();
        assert_eq!(keys, [key], "wave {key}");
        index.remove_prefix(&table, key, Format::Json, &mut subs, "W.");
        while index.leaving() {
            index.advance_leaves(&table, 100, |_| Some(&subs));
        }
        assert!(index.topics.is_empty(), "wave {key}");
        let applied = table.get_or_create("W.0300").apply(
            2 + key as u64,
            &Default::default(),
            0,
            std::time::Instant::now(),
        );
        assert_eq!(applied.interest, [0, 0], "wave {key}: interest withdrawn");
    }
}
