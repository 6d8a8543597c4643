//! Cluster mode carries order books: level changes are numbered in Redis
//! like any update (a change that would cross the book is refused there,
//! so no node applies what another refuses), the book is kept in Redis, and
//! every node sends the same `book`/`book_update` numbering and checksums,
//! a node that subscribes late included; a Redis restarted with its data
//! loses nothing, one restarted empty starts the book over.

mod common;

use common::book_copy::{follow, random_change, Copy};
use common::redis::RedisServer;
use common::{metric_labeled, wait_until, Client};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tickcast::{Server, Side, Update};

const TOPIC: &str = "CB.book";

fn node(redis: &RedisServer) -> Server {
    let s = Server::start(common::config().redis(redis.url())).unwrap();
    wait_until("the node's link to Redis is up", || {
        s.metrics_text().contains("tickcast_cluster_up 1")
    });
    s
}

fn book_subscriber(server: &Server, depth: usize) -> Client {
    let mut c = Client::connect(server.local_addr());
    let id = c.command(json!({"op":"subscribe","topics":[TOPIC],"depth":depth}));
    let ack = c.next_event();
    assert_eq!(
        (ack["event"].as_str(), ack["id"].as_u64()),
        (Some("subscribed"), Some(id))
    );
    c
}

/// The next book event, skipping statuses.
fn next_book_event(c: &mut Client) -> Value {
    loop {
        let ev = c.next_event();
        if ev["event"] != "status" {
            return ev;
        }
    }
}

fn seq_on(server: &Server) -> u64 {
    server.snapshot(TOPIC).map_or(0, |s| s.seq)
}

#[test]
fn book_changes_cross_nodes_with_one_numbering_and_a_late_node_loads_the_book() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let target = Arc::new(AtomicU64::new(0));
    // Followers on both nodes at two depths, every checksum verified.
    let readers: Vec<_> = [(&a, 10), (&b, 25)]
        .into_iter()
        .map(|(server, depth)| {
            let c = book_subscriber(server, depth);
            let t = target.clone();
            std::thread::spawn(move || follow(c, TOPIC, depth, t))
        })
        .collect();
    let p = a.publisher();
    let mut model = Copy::default();
    let mut rng = SmallRng::seed_from_u64(24);
    const CHANGES: u64 = 400;
    for i in 0..CHANGES {
        p.publish(random_change(&mut rng, TOPIC, &mut model))
            .unwrap();
        if i % 80 == 40 {
            // An ask far below every bid: Redis refuses it, nobody numbers it.
            p.publish(Update::new(TOPIC).level(Side::Ask, 10.0, 1.0))
                .unwrap();
        }
    }
    wait_until("every change numbered on B", || seq_on(&b) == CHANGES);
    target.store(CHANGES, Ordering::SeqCst);
    let copies: Vec<(Copy, u64)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(copies[0], (top_of(&model, 10), CHANGES), "depth 10 on A");
    assert_eq!(copies[1], (top_of(&model, 25), CHANGES), "depth 25 on B");
    assert_eq!(seq_on(&a), CHANGES, "A numbered the same");
    assert_eq!(
        metric_labeled(&a, "tickcast_updates_refused_total", "book"),
        5.0,
        "the crossing changes, refused in Redis"
    );

    // A node that never followed the book loads it from Redis.
    let c = node(&redis);
    let mut late = book_subscriber(&c, 100);
    let snap = next_book_event(&mut late);
    assert_eq!(
        (snap["event"].as_str(), snap["seq"].as_u64()),
        (Some("book"), Some(CHANGES)),
        "{snap}"
    );
    let mut copy = Copy::default();
    copy.apply_event(&snap);
    assert_eq!(copy, top_of(&model, 100));
    assert_eq!(snap["checksum"].as_u64(), Some(model.checksum() as u64));
    let epoch = snap["epoch"].clone();

    // A replacement travels too, numbered next everywhere.
    p.publish(
        Update::new(TOPIC)
            .replace_book()
            .level(Side::Bid, 99.0, 1.0)
            .level(Side::Ask, 101.0, 2.0),
    )
    .unwrap();
    let ev = next_book_event(&mut late);
    assert_eq!(
        (ev["event"].as_str(), ev["seq"].as_u64()),
        (Some("book_update"), Some(CHANGES + 1)),
        "{ev}"
    );
    copy.apply_event(&ev);
    let mut replaced = Copy::default();
    replaced.set(Side::Bid, 99.0, 1.0);
    replaced.set(Side::Ask, 101.0, 2.0);
    assert_eq!(copy, replaced);
    assert_eq!(ev["checksum"].as_u64(), Some(replaced.checksum() as u64));
    wait_until("the replacement on A and B", || {
        seq_on(&a) == CHANGES + 1 && seq_on(&b) == CHANGES + 1
    });
    let on_a = a.snapshot(TOPIC).unwrap().epoch.to_string();
    assert_eq!(json!(on_a), epoch, "one epoch on every node");
}

/// A copy's window of `depth` levels a side.
fn top_of(model: &Copy, depth: usize) -> Copy {
    let (bids, asks) = model.top(depth);
    let mut c = Copy::default();
    for (p, s) in bids {
        c.set(Side::Bid, p, s);
    }
    for (p, s) in asks {
        c.set(Side::Ask, p, s);
    }
    c
}

#[test]
fn a_book_survives_a_redis_restart_with_its_data_and_starts_over_without() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let on_b = book_subscriber(&b, 10);
    let p = a.publisher();
    let mut model = Copy::default();
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..50 {
        p.publish(random_change(&mut rng, TOPIC, &mut model))
            .unwrap();
    }
    wait_until("50 changes on B", || seq_on(&b) == 50);

    redis.restart();
    for _ in 0..50 {
        p.publish(random_change(&mut rng, TOPIC, &mut model))
            .unwrap();
    }
    wait_until("100 changes on B after the restart", || seq_on(&b) == 100);
    let target = Arc::new(AtomicU64::new(100));
    let (copy, seq) = follow(on_b, TOPIC, 10, target);
    assert_eq!(
        (copy, seq),
        (top_of(&model, 10), 100),
        "numbered on from what Redis kept"
    );

    // Emptied: the nodes clear the book, and it starts over at seq 1 in a
    // new epoch.
    redis.restart_empty();
    let mut on_b = book_subscriber(&b, 10);
    let first = next_book_event(&mut on_b);
    assert_eq!(first["event"], "book", "{first}");
    let old_epoch = first["epoch"].clone();
    wait_until("B cleared the book", || seq_on(&b) == 0);
    p.publish(Update::new(TOPIC).level(Side::Bid, 5.0, 1.0))
        .unwrap();
    wait_until("numbered again on B", || seq_on(&b) == 1);
    let new_epoch = b.snapshot(TOPIC).unwrap().epoch.to_string();
    assert_ne!(json!(new_epoch), old_epoch, "a new epoch");
}

/// A book snapshot as a late subscriber at depth 1000 gets it, without
/// what differs from server to server (its epoch, and the time of the
/// last change, stamped as each server took it).
fn book_seen(server: &Server, topic: &str) -> Value {
    let mut c = Client::connect(server.local_addr());
    c.command(json!({"op":"subscribe","topics":[topic],"depth":1000}));
    loop {
        let mut ev = c.next_event();
        if ev["event"] == "book" {
            let fields = ev.as_object_mut().unwrap();
            fields.remove("epoch");
            fields.remove("ts");
            return ev;
        }
    }
}

/// Changes that take every path of Redis's check: a best price removed
/// (the sorted set read again), a crossing refused and undone, a level set
/// twice in one change, a side pushed past its depth (thousands of levels
/// in one change), a replacement that crosses.
fn hard_changes(topic: &str) -> Vec<Vec<Update>> {
    let change = || Update::new(topic);
    let mut build = change();
    for i in 0..10 {
        build =
            build
                .level(Side::Bid, 100.0 + i as f64, 1.0)
                .level(Side::Ask, 111.0 + i as f64, 1.0);
    }
    // `n` bids a cent apart from 1.0, of `size`.
    let bids = |n: usize, size: f64| {
        (0..n).fold(change(), |u, i| {
            u.level(Side::Bid, 1.0 + i as f64 * 0.01, size)
        })
    };
    let (deep, nearly) = (bids(5_001, 1.0), bids(4_989, 2.0));
    let singles = vec![
        build,
        // The best bid goes: an ask at its price is fine then.
        change().level(Side::Bid, 109.0, 0.0),
        change().level(Side::Ask, 109.0, 1.0),
        // The best ask goes, and a bid takes a price under the next one.
        change()
            .level(Side::Ask, 109.0, 0.0)
            .level(Side::Bid, 110.0, 1.0),
        change().level(Side::Bid, 112.0, 1.0),
        change()
            .level(Side::Ask, 111.0, 0.0)
            .level(Side::Bid, 111.5, 1.0),
        change()
            .level(Side::Ask, 112.0, 0.0)
            .level(Side::Bid, 113.0, 1.0),
        change()
            .level(Side::Bid, 105.0, 0.0)
            .level(Side::Bid, 105.0, 3.0),
        deep,
        nearly,
        change().level(Side::Bid, 0.5, 1.0),
        change().level(Side::Bid, 0.25, 1.0),
        change()
            .level(Side::Bid, 1.0, 0.0)
            .level(Side::Bid, 0.25, 1.0),
        change()
            .replace_book()
            .level(Side::Bid, 200.0, 1.0)
            .level(Side::Ask, 150.0, 1.0),
    ];
    singles.into_iter().map(|u| vec![u]).collect()
}

/// Many changes of a book after a replacement, with crossings among them.
fn busy_changes(topic: &str) -> Vec<Vec<Update>> {
    let change = || Update::new(topic);
    // One batch, one script call: every change of it after the first is
    // checked against the state the ones before it left, the replacement
    // that opens it included.
    let mut rng = SmallRng::seed_from_u64(7);
    let mut batch =
        vec![change()
            .replace_book()
            .level(Side::Bid, 99.0, 1.0)
            .level(Side::Ask, 101.0, 1.0)];
    for i in 0..300 {
        let mut u = change();
        for _ in 0..rand::Rng::random_range(&mut rng, 1..=4) {
            let bid = rand::Rng::random_bool(&mut rng, 0.5);
            let price = 95.0 + rand::Rng::random_range(&mut rng, 0..24) as f64 * 0.5;
            let size = rand::Rng::random_range(&mut rng, 0..3) as f64;
            u = u.level(if bid { Side::Bid } else { Side::Ask }, price, size);
        }
        if i % 50 == 25 {
            u = u.level(Side::Bid, 150.0, 1.0);
        }
        batch.push(u);
    }
    vec![batch]
}

/// Redis refuses and numbers book changes exactly as one node does alone:
/// the same changes into a single node and into a cluster give the same
/// book, `seq`, checksum and refusals, on the publishing node and on a node
/// that loads the book from Redis afterwards.
#[test]
fn redis_checks_book_changes_exactly_as_a_single_node_does() {
    const BOOK: &str = "DF.book";
    let single = common::server();
    let redis = RedisServer::start_with(&[]);
    let a = node(&redis);
    // A node follows in Redis what its clients want.
    let mut follower = Client::connect(a.local_addr());
    follower.command(json!({"op":"subscribe","topics":[BOOK],"depth":10}));
    assert_eq!(follower.next_event()["event"], "subscribed");
    let (ps, pa) = (single.publisher(), a.publisher());
    let refused = |s: &Server| metric_labeled(s, "tickcast_updates_refused_total", "book");
    let seq = |s: &Server| s.snapshot(BOOK).map_or(0, |x| x.seq);
    let mut changes = 0;
    for (phase, batches) in [hard_changes(BOOK), busy_changes(BOOK)]
        .into_iter()
        .enumerate()
    {
        changes += batches.iter().map(Vec::len).sum::<usize>() as u64;
        for batch in batches {
            ps.publish_batch(batch.clone()).unwrap();
            pa.publish_batch(batch).unwrap();
        }
        wait_until("the single node applied every change", || {
            seq(&single) + refused(&single) as u64 == changes
        });
        wait_until("Redis numbered or refused every change", || {
            seq(&a) + refused(&a) as u64 == changes
        });
        let want = book_seen(&single, BOOK);
        assert_eq!(
            refused(&a),
            refused(&single),
            "phase {phase}: the same refused"
        );
        assert_eq!(seq(&a), seq(&single), "phase {phase}");
        assert_eq!(
            book_seen(&a, BOOK),
            want,
            "phase {phase}: the publishing node"
        );
        let late = node(&redis);
        let loaded = book_seen(&late, BOOK);
        assert_eq!(
            loaded, want,
            "phase {phase}: a node that loads it from Redis"
        );
    }
    // Crossings at 112 and 113, a crossing replacement, 5,001 levels a
    // side twice, and the busy batch's crossings (its prices overlap).
    assert!(refused(&single) >= 10.0, "{}", refused(&single));
}
