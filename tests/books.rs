//! Issue 14, order books (`….book`): subscribers of random depths follow
//! random level changes and end with exactly the server's top levels, every
//! checksum verifying on the way; full replacement; levels entering the
//! window; refusals.

mod common;

use common::book_copy::{follow, follow_counting, random_change, Copy};
use common::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tickcast::{Error, Side, Update, DEPTHS};

/// Waits until the router has numbered `seq` updates of `topic`.
fn numbered(server: &tickcast::Server, topic: &str, seq: u64) {
    common::wait_until("numbered", || {
        server.snapshot(topic).is_some_and(|s| s.seq == seq)
    });
}

fn subscriber(addr: std::net::SocketAddr, sel: &str, depth: usize, msgpack: bool) -> Client {
    let mut c = match msgpack {
        true => Client::connect_msgpack(addr),
        false => Client::connect(addr),
    };
    let id = c.command(json!({"op":"subscribe","topics":[sel],"depth":depth}));
    let ack = c.next_event();
    assert_eq!(
        (ack["event"].as_str(), ack["id"].as_u64()),
        (Some("subscribed"), Some(id))
    );
    c
}

#[test]
fn subscribers_of_random_depths_end_with_the_servers_top_levels() {
    let server = common::server();
    let p = server.publisher();
    let addr = server.local_addr();
    let topic = "R.book";
    let mut rng = SmallRng::seed_from_u64(14);
    let target = Arc::new(AtomicU64::new(0));
    let mut model = Copy::default();
    let mut followers = Vec::new();
    let spawn = |rng: &mut SmallRng, followers: &mut Vec<_>| {
        let depth = DEPTHS[rng.random_range(0..DEPTHS.len())];
        let msgpack = rng.random_bool(0.5);
        let sel = if rng.random_bool(0.3) { "R.*" } else { topic };
        let c = subscriber(addr, sel, depth, msgpack);
        let t = target.clone();
        followers.push((
            depth,
            std::thread::spawn(move || follow(c, topic, depth, t)),
        ));
    };
    // Some follow from before the book exists.
    for _ in 0..3 {
        spawn(&mut rng, &mut followers);
    }
    let mut seq = 0u64;
    let publish = |u: Update, model: &mut Copy, seq: &mut u64| {
        for l in &u.levels.as_ref().unwrap().levels {
            model.set(l.side, l.price, l.size);
        }
        p.publish(u).unwrap();
        *seq += 1;
    };
    // A first full book: 150 levels a side around 1000.
    let mut first = Update::new(topic).replace_book();
    for i in 0..150 {
        first = first.level(Side::Bid, 999.5 - i as f64 * 0.5, 1.0 + i as f64);
        first = first.level(Side::Ask, 1000.5 + i as f64 * 0.5, 2.0 + i as f64);
    }
    publish(first, &mut model, &mut seq);
    for round in 0..3000 {
        if round % 600 == 300 {
            // More subscribers join mid-stream, from a snapshot.
            spawn(&mut rng, &mut followers);
        }
        if round == 1500 {
            // A full replacement: every level not in it goes.
            let mut u = Update::new(topic).replace_book();
            model = Copy::default();
            for i in 0..40 {
                u = u.level(Side::Bid, 990.0 - i as f64, 5.0);
                u = u.level(Side::Ask, 1010.0 + i as f64, 5.0);
            }
            publish(u, &mut model, &mut seq);
            continue;
        }
        // (random_change keeps the model; publish's own setting of the
        // same levels again changes nothing.)
        let u = random_change(&mut rng, topic, &mut model);
        publish(u, &mut model, &mut seq);
    }
    numbered(&server, topic, seq);
    target.store(seq, Ordering::SeqCst);
    assert!(followers.len() >= 7);
    for (depth, f) in followers {
        let (copy, got) = f.join().expect("follower");
        assert_eq!(got, seq);
        let (bids, asks) = model.top(depth);
        assert_eq!(
            copy.top(depth),
            (bids, asks),
            "depth {depth} holds the top levels"
        );
    }
}

#[test]
fn levels_enter_the_window_as_others_leave_it() {
    let server = common::server();
    let p = server.publisher();
    let mut u = Update::new("E.book");
    for i in 0..12 {
        u = u.level(Side::Ask, 100.0 + i as f64, 1.0);
    }
    p.publish(u).unwrap();
    numbered(&server, "E.book", 1);
    let mut c = subscriber(server.local_addr(), "E.book", 10, false);
    let snap = c.next_event();
    assert_eq!(snap["event"], "book");
    assert_eq!(snap["asks"].as_array().unwrap().len(), 10);
    assert_eq!(snap["asks"][9], json!([109.0, 1.0]));
    // Two levels inside the window go: 110 and 111 move in from below.
    p.publish(
        Update::new("E.book")
            .level(Side::Ask, 100.0, 0.0)
            .level(Side::Ask, 103.0, 0.0),
    )
    .unwrap();
    let ev = c.next_event();
    assert_eq!(ev["event"], "book_update");
    assert_eq!(
        ev["asks"],
        json!([[100.0, 0.0], [103.0, 0.0], [110.0, 1.0], [111.0, 1.0]])
    );
    // A better level pushes the worst one out of the window.
    p.publish(Update::new("E.book").level(Side::Ask, 99.0, 3.0))
        .unwrap();
    let ev = c.next_event();
    assert_eq!(ev["asks"], json!([[99.0, 3.0], [111.0, 0.0]]));
    // A change beyond the window changes nothing in it, and still comes
    // (empty), so the sequence has no gap.
    p.publish(Update::new("E.book").level(Side::Ask, 150.0, 1.0))
        .unwrap();
    let ev = c.next_event();
    assert_eq!(
        (ev["asks"].clone(), ev["bids"].clone()),
        (json!([]), json!([]))
    );
    assert_eq!(ev["seq"], 4);
}

#[test]
fn a_changed_depth_sends_a_fresh_snapshot_at_the_new_depth() {
    let server = common::server();
    let p = server.publisher();
    let mut u = Update::new("D.book");
    for i in 0..60 {
        u = u.level(Side::Bid, 100.0 - i as f64, 1.0);
    }
    p.publish(u).unwrap();
    numbered(&server, "D.book", 1);
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["D.*"]);
    let snap = c.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["depth"].as_u64()),
        (Some("book"), Some(10))
    );
    assert_eq!(snap["bids"].as_array().unwrap().len(), 10, "10 by default");
    c.command(json!({"op":"subscribe","topics":["D.book"],"depth":25}));
    assert_eq!(c.next_event()["event"], "subscribed");
    let snap = c.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["depth"].as_u64()),
        (Some("book"), Some(25))
    );
    assert_eq!(snap["bids"].as_array().unwrap().len(), 25);
    p.publish(Update::new("D.book").level(Side::Bid, 80.0, 9.0))
        .unwrap();
    let ev = c.next_event();
    assert_eq!(ev["depth"], 25);
    assert_eq!(
        ev["bids"],
        json!([[80.0, 9.0]]),
        "level 21 is in the window now"
    );
    // Dropping the exact subscription returns the topic to the pattern's depth.
    c.command(json!({"op":"unsubscribe","topics":["D.book"]}));
    assert_eq!(c.next_event()["event"], "unsubscribed");
    let snap = c.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["depth"].as_u64()),
        (Some("book"), Some(10))
    );
    assert_eq!(snap["seq"], 2);
}

#[test]
fn bad_book_input_is_refused_with_a_clear_error() {
    let server = common::server();
    let p = server.publisher();
    let bad = |u: Update| match p.publish(u) {
        Err(Error::InvalidBook(why)) => why.to_string(),
        other => panic!("expected InvalidBook, got {other:?}"),
    };
    assert!(bad(Update::new("X").level(Side::Bid, 1.0, 1.0)).contains(".book"));
    assert!(bad(Update::new("X.book").bid(1.0)).contains("takes levels"));
    assert!(bad(Update::new("X.book").level(Side::Bid, f64::NAN, 1.0)).contains("price"));
    assert!(bad(Update::new("X.book").level(Side::Ask, 1.0, -1.0)).contains("size"));
    assert!(bad(Update::new("X.book").level(Side::Ask, 1.0, f64::INFINITY)).contains("size"));
    // A change that would cross the book is refused by the router, counted,
    // and the book is unchanged; the next good change is seq 2.
    p.publish(
        Update::new("X.book")
            .level(Side::Bid, 10.0, 1.0)
            .level(Side::Ask, 11.0, 1.0),
    )
    .unwrap();
    p.publish(Update::new("X.book").level(Side::Bid, 11.0, 1.0))
        .unwrap();
    p.publish(Update::new("X.book").level(Side::Bid, 10.5, 1.0))
        .unwrap();
    numbered(&server, "X.book", 2);
    let refused = common::metric_labeled(&server, "tickcast_updates_refused_total", "book");
    assert_eq!(refused, 1.0);
    let mut c = subscriber(server.local_addr(), "X.book", 10, false);
    let snap = c.next_event();
    assert_eq!(snap["bids"], json!([[10.5, 1.0], [10.0, 1.0]]));
    assert_eq!(snap["asks"], json!([[11.0, 1.0]]));
    // A subscribe with a depth that is not offered.
    let id = c.command(json!({"op":"subscribe","topics":["X.book"],"depth":7}));
    let err = c.next_event();
    assert_eq!(
        (err["code"].as_str(), err["id"].as_u64()),
        (Some("bad_request"), Some(id))
    );
    assert!(err["message"].as_str().unwrap().contains("depth"));
}

#[test]
fn network_publishers_send_books_and_bad_levels_are_refused_by_index() {
    const PUB: &str = "pub-token-books";
    let config = common::config().publisher_tokens(vec![PUB.into()]);
    let server = tickcast::Server::start(config).unwrap();
    let addr = server.local_addr();
    // The Rust remote publisher checks as the server does, at the call.
    let remote = tickcast::RemotePublisher::connect(tickcast::RemoteConfig::new(
        format!("ws://{addr}/publish"),
        PUB,
    ))
    .unwrap();
    let bad = remote.publish(Update::new("N.book").level(Side::Ask, f64::NAN, 1.0));
    assert!(matches!(bad, Err(Error::InvalidBook(_))), "{bad:?}");
    remote
        .publish(
            Update::new("N.book")
                .replace_book()
                .level(Side::Bid, 9.0, 1.0)
                .level(Side::Ask, 10.0, 2.0),
        )
        .unwrap();
    numbered(&server, "N.book", 1);
    let mut c = subscriber(addr, "N.book", 25, true);
    let snap = c.next_event();
    assert_eq!(
        (snap["bids"].clone(), snap["asks"].clone()),
        (json!([[9.0, 1.0]]), json!([[10.0, 2.0]]))
    );
    // A raw frame: a bad level refuses its update only; the other is published.
    let mut ws = common::raw_publisher(addr, PUB);
    let frame = json!([
        {"topic": "N.book", "bids": [[8.0, -1.0]]},
        {"topic": "N.book", "asks": [[11.0, 3.0]], "bids": [[9.0, 0.0]]},
    ]);
    ws.send(tungstenite::Message::binary(
        rmp_serde::to_vec_named(&frame).unwrap(),
    ))
    .unwrap();
    match common::next_error(&mut ws) {
        tickcast::publish::PublisherEvent::Error {
            code,
            indexes,
            message,
            ..
        } => {
            assert_eq!((code.as_str(), indexes), ("bad_update", vec![0]));
            assert!(message.contains("size"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let ev = c.next_event();
    assert_eq!(ev["event"], "book_update");
    assert_eq!(
        (ev["seq"].as_u64(), ev["depth"].as_u64()),
        (Some(2), Some(25))
    );
    assert_eq!(
        (ev["bids"].clone(), ev["asks"].clone()),
        (json!([[9.0, 0.0]]), json!([[11.0, 3.0]]))
    );
}

#[test]
fn a_subscriber_that_falls_behind_gets_merged_book_changes_that_stay_exact() {
    let config = common::config()
        .shards(1)
        .conflate_bytes(4096)
        .socket_send_buffer(4096);
    let server = tickcast::Server::start(config).unwrap();
    let p = server.publisher();
    let topic = "S.book";
    let mut rng = SmallRng::seed_from_u64(15);
    let mut model = Copy::default();
    p.publish(
        Update::new(topic)
            .level(Side::Bid, 999.5, 1.0)
            .level(Side::Ask, 1000.5, 1.0),
    )
    .unwrap();
    model.set(Side::Bid, 999.5, 1.0);
    model.set(Side::Ask, 1000.5, 1.0);
    numbered(&server, topic, 1);
    let mut c = subscriber(server.local_addr(), topic, 100, false);
    // It reads nothing while 6,000 changes (megabytes at depth 100) go by.
    for _ in 0..6000 {
        p.publish(random_change(&mut rng, topic, &mut model))
            .unwrap();
    }
    numbered(&server, topic, 6001);
    let merged = AtomicU64::new(0);
    let target = Arc::new(AtomicU64::new(6001));
    let (copy, _) = follow_counting(&mut c, topic, 100, target, &merged);
    assert!(
        merged.load(Ordering::SeqCst) > 0,
        "it fell behind: some events were merged"
    );
    assert_eq!(
        copy.top(100),
        model.top(100),
        "and it holds the server's top 100"
    );
}

#[test]
fn max_rate_merges_book_changes_per_level() {
    let server = common::server();
    let p = server.publisher();
    let topic = "M.book";
    let mut rng = SmallRng::seed_from_u64(16);
    let mut model = Copy::default();
    let mut c = Client::connect(server.local_addr());
    c.command(json!({"op":"subscribe","topics":[topic],"depth":25,"max_rate":5}));
    assert_eq!(c.next_event()["event"], "subscribed");
    let target = Arc::new(AtomicU64::new(0));
    let t = target.clone();
    let reader = std::thread::spawn(move || {
        let merged = AtomicU64::new(0);
        let (copy, _) = follow_counting(&mut c, topic, 25, t, &merged);
        (copy, merged.load(Ordering::SeqCst))
    });
    let n = 600;
    for _ in 0..n {
        p.publish(random_change(&mut rng, topic, &mut model))
            .unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    numbered(&server, topic, n);
    target.store(n, Ordering::SeqCst);
    let (copy, merged) = reader.join().unwrap();
    assert!(merged > 0, "5 a second: changes were merged");
    assert_eq!(copy.top(25), model.top(25));
}
