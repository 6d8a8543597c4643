//! `tickcast::Subscriber`, the blocking Rust subscriber, against a real
//! server: acknowledged subscribe and unsubscribe, merged values, typed
//! refusals, books kept with every checksum verified, both wire formats,
//! and a dropped connection resumed from the server's history with `since`.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tickcast::remote::subscriber::{Event, SubscribeOptions};
use tickcast::{Format, Server, Side, Subscriber, SubscriberConfig, Update};

const ADMIN: &str = "admin-token-for-tests";

/// Reads events until `done` says so (or fails after 10 s).
fn until(sub: &mut Subscriber, what: &str, mut done: impl FnMut(&Event, &Subscriber) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(got) = sub.next(Duration::from_millis(100)).unwrap() {
            assert!(!matches!(got.event, Event::Gap { .. }), "{what}: {got:?}");
            if done(&got.event, sub) {
                return;
            }
        }
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn values_merge_in_both_formats_and_refusals_are_typed() {
    let server = common::server();
    let p = server.publisher();
    p.publish(Update::new("S.A").bid(1.0).ask(2.0)).unwrap();
    wait_until("a value", || server.snapshot("S.A").is_some());
    for format in [Format::Json, Format::MsgPack] {
        let url = format!("ws://{}/ws", server.local_addr());
        let mut sub = Subscriber::connect(SubscriberConfig::new(url).format(format)).unwrap();
        sub.subscribe(&["S.*"], None).unwrap();
        until(&mut sub, "the snapshot", |e, _| {
            matches!(e, Event::Snapshot { .. })
        });
        p.publish(Update::new("S.A").last(1.5)).unwrap();
        until(&mut sub, "the merged update", |_, s| {
            s.value("S.A")
                .is_some_and(|v| v.fields.get("last") == Some(&1.5))
        });
        let v = sub.value("S.A").unwrap();
        let server_has = server.snapshot("S.A").unwrap();
        assert_eq!(v.seq, server_has.seq, "{format:?}");
        assert_eq!(v.fields["bid"], 1.0, "kept from the snapshot");
        assert_eq!(v.epoch.as_deref(), Some(server_has.epoch.as_str()));

        let refused = sub.subscribe(&["bad topic!"], None).unwrap_err();
        assert!(
            matches!(&refused, tickcast::Error::Command { code, .. } if code == "bad_topic"),
            "{refused:?}"
        );
        sub.unsubscribe(&["S.*"]).unwrap();
        assert!(sub.value("S.A").is_none(), "dropped with its subscription");
    }
}

#[test]
fn a_book_is_kept_level_by_level_with_every_checksum_verified() {
    let server = common::server();
    let p = server.publisher();
    let mut full = Update::new("S.book").replace_book();
    for i in 0..30u32 {
        full = full
            .level(Side::Bid, 100.0 - f64::from(i), 1.0 + f64::from(i))
            .level(Side::Ask, 101.0 + f64::from(i), 2.0 + f64::from(i));
    }
    p.publish(full).unwrap();
    wait_until("the book", || server.snapshot("S.book").is_some());
    let url = format!("ws://{}/ws", server.local_addr());
    let mut sub = Subscriber::connect(SubscriberConfig::new(url)).unwrap();
    let depth = SubscribeOptions {
        max_rate: None,
        depth: Some(10),
    };
    sub.subscribe(&["S.book"], Some(depth)).unwrap();
    until(&mut sub, "the book", |e, _| matches!(e, Event::Book { .. }));
    assert_eq!(
        sub.book("S.book").unwrap().bids.len(),
        10,
        "cut to the depth"
    );
    // Changes inside and outside the window, and removals that pull
    // levels into it: every book_update's checksum must match the copy.
    for i in 0..40u32 {
        let price = 100.0 - f64::from(i % 15);
        let size = if i % 3 == 0 { 0.0 } else { f64::from(i) };
        p.publish(Update::new("S.book").level(Side::Bid, price, size))
            .unwrap();
    }
    let last = 40 + 1;
    until(&mut sub, "every change", |_, s| {
        s.book("S.book").is_some_and(|b| b.seq == last)
    });
    let book = sub.book("S.book").unwrap();
    assert!(
        book.bids.windows(2).all(|w| w[0].0 > w[1].0),
        "best first: {:?}",
        book.bids
    );
    assert!(book.bids.len() <= 10);
}

#[test]
fn a_dropped_connection_is_resumed_from_history_with_nothing_missed() {
    let server = Server::start(config().admin_tokens(vec![ADMIN.into()])).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    p.publish(Update::new("R.A").bid(1.0)).unwrap();
    wait_until("a value", || server.snapshot("R.A").is_some());
    let mut sub = Subscriber::connect(SubscriberConfig::new(format!("ws://{addr}/ws"))).unwrap();
    sub.subscribe(&["R.A"], None).unwrap();
    until(&mut sub, "the snapshot", |e, _| {
        matches!(e, Event::Snapshot { .. })
    });

    // An operator closes the connection; updates go on meanwhile.
    let list = http_raw(
        addr,
        format!(
            "GET /admin/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
        )
        .as_bytes(),
    );
    let body: serde_json::Value =
        serde_json::from_str(list.split_once("\r\n\r\n").unwrap().1).unwrap();
    let id = body["connections"][0]["id"].as_u64().unwrap();
    let closed = http_raw(
        addr,
        format!("POST /admin/connections/{id}/close HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n").as_bytes(),
    );
    assert!(closed.starts_with("HTTP/1.1 200"), "{closed}");
    for i in 2..=6 {
        p.publish(Update::new("R.A").bid(f64::from(i))).unwrap();
    }
    let mut recovered = None;
    until(&mut sub, "the reconnect", |e, _| {
        if let Event::Reconnected { recovered: r } = e {
            recovered = Some(r.clone());
        }
        recovered.is_some()
    });
    until(&mut sub, "the missed updates", |_, s| {
        s.value("R.A").is_some_and(|v| v.seq == 6)
    });
    assert_eq!(
        recovered.unwrap(),
        ["R.A"],
        "resumed from history, not a snapshot"
    );
    assert_eq!(sub.value("R.A").unwrap().fields["bid"], 6.0);
}
