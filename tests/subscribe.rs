//! Subscription semantics over a real loopback server and real WebSocket clients.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tickcast::Update;

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

fn snapshot_then_updates(msgpack: bool) {
    let server = server();
    let p = server.publisher();
    p.publish(Update::new("BTC-USD").bid(100.0).ask(101.0))
        .unwrap();
    p.publish(Update::new("BTC-USD").last(100.5).volume(3.0))
        .unwrap();
    wait_until("two updates sequenced", || {
        server.snapshot("BTC-USD").map(|s| s.seq) == Some(2)
    });

    let mut c = if msgpack {
        Client::connect_msgpack(server.local_addr())
    } else {
        Client::connect(server.local_addr())
    };
    c.subscribe(&["BTC-USD"]);
    let snap = c.next_event();
    assert_eq!(snap["event"], "snapshot");
    assert_eq!(snap["topic"], "BTC-USD");
    assert_eq!(seq(&snap), 2);
    // The snapshot merges fields across updates.
    assert_eq!(snap["bid"], 100.0);
    assert_eq!(snap["ask"], 101.0);
    assert_eq!(snap["last"], 100.5);
    assert_eq!(snap["volume"], 3.0);
    assert!(
        snap.get("bid_size").is_none(),
        "absent fields are not sent: {snap}"
    );

    for i in 0..200 {
        p.publish(
            Update::new("BTC-USD")
                .bid(100.0 + i as f64)
                .timestamp_ns(1_000 + i),
        )
        .unwrap();
    }
    for i in 0..200u64 {
        let ev = c.next_event();
        assert_eq!(ev["event"], "update");
        assert_eq!(seq(&ev), 3 + i, "strictly increasing, no gap, no duplicate");
        assert_eq!(ev["ts"], 1_000 + i);
        assert_eq!(ev["bid"], 100.0 + i as f64);
        assert!(
            ev.get("ask").is_none(),
            "updates carry only their own fields: {ev}"
        );
    }
    assert!(
        c.try_next_event(Duration::from_millis(200)).is_none(),
        "no duplicate after the burst"
    );
}

#[test]
fn json_subscriber_gets_snapshot_then_every_update_in_order() {
    snapshot_then_updates(false);
}

#[test]
fn msgpack_subscriber_gets_snapshot_then_every_update_in_order() {
    snapshot_then_updates(true);
}

#[test]
fn subscribing_to_a_topic_before_it_exists_delivers_from_seq_one() {
    let server = server();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["AAPL"]);
    assert!(
        c.try_next_event(Duration::from_millis(100)).is_none(),
        "no snapshot for a topic without a value"
    );
    server
        .publisher()
        .publish(Update::new("AAPL").last(189.5))
        .unwrap();
    let ev = c.next_event();
    assert_eq!((ev["event"].as_str(), seq(&ev)), (Some("update"), 1));
}

#[test]
fn wildcard_subscription_receives_topics_published_later() {
    let server = server();
    let p = server.publisher();
    p.publish(Update::new("FX.EURUSD").bid(1.08)).unwrap();
    p.publish(Update::new("AAPL").bid(1.0)).unwrap();
    wait_until("topics exist", || server.topic_count() == 2);

    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["FX.*"]);
    let snap = c.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["topic"].as_str()),
        (Some("snapshot"), Some("FX.EURUSD"))
    );

    p.publish(Update::new("FX.USDJPY").bid(151.0)).unwrap();
    p.publish(Update::new("AAPL").bid(2.0)).unwrap();
    p.publish(Update::new("FX.EURUSD").bid(1.09)).unwrap();
    let a = c.next_event();
    assert_eq!(
        (a["event"].as_str(), a["topic"].as_str(), seq(&a)),
        (Some("update"), Some("FX.USDJPY"), 1)
    );
    let b = c.next_event();
    assert_eq!((b["topic"].as_str(), seq(&b)), (Some("FX.EURUSD"), 2));
    assert!(
        c.try_next_event(Duration::from_millis(200)).is_none(),
        "AAPL is not under FX."
    );
}

#[test]
fn overlapping_exact_and_wildcard_subscriptions_deliver_once() {
    let server = server();
    let p = server.publisher();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["FX.EURUSD", "FX.*", "*"]);
    for i in 0..20 {
        p.publish(Update::new("FX.EURUSD").bid(i as f64)).unwrap();
    }
    for i in 1..=20 {
        assert_eq!(seq(&c.next_event()), i);
    }
    // Dropping one of the covering subscriptions keeps the others in force.
    let id = c.command(json!({"op":"unsubscribe","topics":["FX.*","*"]}));
    let ack = c.next_event();
    assert_eq!(
        (ack["event"].as_str(), ack["id"].as_u64()),
        (Some("unsubscribed"), Some(id))
    );
    p.publish(Update::new("FX.EURUSD").bid(99.0)).unwrap();
    assert_eq!(seq(&c.next_event()), 21);
    assert!(c.try_next_event(Duration::from_millis(200)).is_none());
}

#[test]
fn an_exact_subscription_made_under_a_wildcard_outlives_the_wildcard() {
    // The topic does not exist yet when both subscriptions are made, so the
    // exact one is covered by the wildcard from the start; dropping the
    // wildcard must leave the exact subscription in force.
    let server = server();
    let p = server.publisher();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["NEW.*", "NEW.A"]);
    let id = c.command(json!({"op":"unsubscribe","topics":["NEW.*"]}));
    assert_eq!(c.next_event()["id"].as_u64(), Some(id));
    for i in 0..3 {
        p.publish(Update::new("NEW.A").bid(i as f64)).unwrap();
    }
    p.publish(Update::new("NEW.B").bid(0.0)).unwrap();
    for want in 1..=3 {
        let ev = c.next_event();
        assert_eq!(
            (ev["event"].as_str(), ev["topic"].as_str(), seq(&ev)),
            (Some("update"), Some("NEW.A"), want)
        );
    }
    // NEW.B may belong to another router than NEW.A: it holds its value
    // before the wildcard comes back (order is per topic only).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.snapshot("NEW.B").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "NEW.B never published"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Subscribing to the wildcard again: the covered topic gets no second
    // snapshot and no duplicate; the other one gets its snapshot.
    c.subscribe(&["NEW.*"]);
    let snap = c.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["topic"].as_str()),
        (Some("snapshot"), Some("NEW.B"))
    );
    p.publish(Update::new("NEW.A").bid(9.0)).unwrap();
    let ev = c.next_event();
    assert_eq!((ev["topic"].as_str(), seq(&ev)), (Some("NEW.A"), 4));
    assert!(c.try_next_event(Duration::from_millis(200)).is_none());
}

#[test]
fn unsubscribe_stops_delivery_and_resubscribe_sends_a_fresh_snapshot() {
    let server = server();
    let p = server.publisher();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["ETH-USD"]);
    p.publish(Update::new("ETH-USD").bid(1.0)).unwrap();
    assert_eq!(seq(&c.next_event()), 1);

    let id = c.command(json!({"op":"unsubscribe","topics":["ETH-USD"]}));
    let ack = c.next_event();
    assert_eq!(
        ack,
        json!({"event":"unsubscribed","id":id,"topics":["ETH-USD"]})
    );
    for _ in 0..5 {
        p.publish(Update::new("ETH-USD").ask(2.0)).unwrap();
    }
    wait_until("updates sequenced", || {
        server.snapshot("ETH-USD").unwrap().seq == 6
    });
    assert!(
        c.try_next_event(Duration::from_millis(200)).is_none(),
        "nothing after unsubscribe"
    );

    c.subscribe(&["ETH-USD"]);
    let snap = c.next_event();
    assert_eq!((snap["event"].as_str(), seq(&snap)), (Some("snapshot"), 6));
    assert_eq!(
        (snap["bid"].as_f64(), snap["ask"].as_f64()),
        (Some(1.0), Some(2.0))
    );
}

#[test]
fn topics_lists_what_was_published_with_optional_prefix() {
    let server = server();
    let p = server.publisher();
    for t in ["FX.EURUSD", "AAPL", "FX.USDJPY", "BTC-USD"] {
        p.publish(Update::new(t).bid(1.0)).unwrap();
    }
    wait_until("four topics", || server.topic_count() == 4);
    let mut c = Client::connect(server.local_addr());
    let id = c.command(json!({"op":"topics"}));
    assert_eq!(
        c.next_event(),
        json!({"event":"topics","id":id,"topics":["AAPL","BTC-USD","FX.EURUSD","FX.USDJPY"]})
    );
    let id = c.command(json!({"op":"topics","prefix":"FX."}));
    assert_eq!(
        c.next_event(),
        json!({"event":"topics","id":id,"topics":["FX.EURUSD","FX.USDJPY"]})
    );
}

#[test]
fn ping_gets_pong_with_the_same_id() {
    let server = server();
    let mut c = Client::connect(server.local_addr());
    c.send(json!({"op":"ping","id":"abc"}));
    let pong = c.next_event();
    assert_eq!(
        (pong["event"].as_str(), pong["id"].as_str()),
        (Some("pong"), Some("abc"))
    );
    assert!(pong["ts"].as_u64().unwrap() > 0);
    // A WebSocket-level ping is answered with a pong frame by the transport.
    c.ws.send(tungstenite::Message::Ping(b"hb".to_vec().into()))
        .unwrap();
    match c.ws.read().unwrap() {
        tungstenite::Message::Pong(p) => assert_eq!(&p[..], b"hb"),
        other => panic!("expected pong, got {other:?}"),
    }
}

/// Acknowledgements name what was asked, as the client wrote it (patterns
/// with their `*`), each once, in order of first mention, in both formats.
#[test]
fn acknowledgements_name_each_selector_once_as_written() {
    let server = server();
    for mut c in [
        Client::connect(server.local_addr()),
        Client::connect_msgpack(server.local_addr()),
    ] {
        let asked = json!(["B", "FX.*", "A", "B", "*", "FX.*"]);
        let id = c.command(json!({"op":"subscribe","id":"s","topics":asked}));
        let ack = c.next_event();
        assert_eq!(ack["event"], "subscribed", "{ack}");
        assert_eq!(ack["id"], id);
        assert_eq!(ack["topics"], json!(["B", "FX.*", "A", "*"]));
        c.command(json!({"op":"unsubscribe","id":2,"topics":["*","A","*","Q.*"]}));
        let ack = c.next_event();
        assert_eq!(
            ack,
            json!({"event":"unsubscribed","id":2,"topics":["*","A","Q.*"]})
        );
    }
}

#[test]
fn json_is_the_default_and_msgpack_is_chosen_by_subprotocol() {
    let server = server();
    server
        .publisher()
        .publish(Update::new("X").bid(1.0))
        .unwrap();
    wait_until("X exists", || server.snapshot("X").is_some());
    let mut plain = Client::connect_with(server.local_addr(), None);
    plain.subscribe(&["X"]);
    assert_eq!(plain.next_event()["event"], "snapshot");
    let mut json_c = Client::connect_with(server.local_addr(), Some("tickcast.json"));
    json_c.subscribe(&["X"]);
    assert_eq!(json_c.next_event()["event"], "snapshot");
    let mut mp = Client::connect_msgpack(server.local_addr());
    mp.subscribe(&["X"]);
    assert_eq!(mp.next_event()["event"], "snapshot");
}

/// A wildcard over thousands of topics is withdrawn a chunk per loop turn:
/// nothing of it arrives after the `unsubscribed` ack, and subscribing to it
/// again (while the withdrawal is still under way) brings every topic's
/// snapshot once, then its updates.
#[test]
fn a_big_wildcard_unsubscribed_and_subscribed_again_at_once_is_exact() {
    let server = tickcast::Server::start(common::config().shards(1)).unwrap();
    let p = server.publisher();
    const N: usize = 6_000;
    let publish_all = |bid: f64| {
        for i in 0..N {
            p.publish(Update::new(format!("B.{i:05}")).bid(bid))
                .unwrap();
        }
    };
    publish_all(1.0);
    wait_until("topics in", || server.topic_count() == N);
    let mut c = Client::connect(server.local_addr());
    let snapshots = |c: &mut Client, seq_now: u64| {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < N {
            let ev = c.next_event();
            assert_eq!(ev["event"], "snapshot", "{ev}");
            assert_eq!(seq(&ev), seq_now, "{ev}");
            assert!(
                seen.insert(ev["topic"].as_str().unwrap().to_owned()),
                "{ev}"
            );
        }
    };
    c.subscribe(&["B.*"]);
    snapshots(&mut c, 1);
    // Out and back in, in one go: the old memberships are taken over.
    c.send(json!({"op":"unsubscribe","topics":["B.*"]}));
    c.send(json!({"op":"subscribe","topics":["B.*"]}));
    assert_eq!(c.next_event()["event"], "unsubscribed");
    assert_eq!(c.next_event()["event"], "subscribed");
    snapshots(&mut c, 1);
    // Out, and every topic moves on at once, while the withdrawal runs.
    c.send(json!({"op":"unsubscribe","topics":["B.*"]}));
    assert_eq!(c.next_event()["event"], "unsubscribed");
    publish_all(2.0);
    wait_until("sequenced", || {
        server.snapshot(&format!("B.{:05}", N - 1)).unwrap().seq == 2
    });
    assert!(
        c.try_next_event(Duration::from_millis(200)).is_none(),
        "nothing after unsubscribe"
    );
    // In again: fresh snapshots, then updates, once each.
    c.subscribe(&["B.*"]);
    snapshots(&mut c, 2);
    p.publish(Update::new("B.00042").ask(3.0)).unwrap();
    let ev = c.next_event();
    assert_eq!(
        (ev["event"].as_str(), ev["topic"].as_str(), seq(&ev)),
        (Some("update"), Some("B.00042"), 3)
    );
    assert!(
        c.try_next_event(Duration::from_millis(100)).is_none(),
        "once"
    );
}
