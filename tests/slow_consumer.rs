//! A subscriber that stops reading while updates flow fast: its queue stays
//! bounded (conflation keeps the newest update per topic), it gets the latest
//! value of every topic once it reads again, and a normal subscriber on the
//! same shard keeps receiving every update without a gap.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tickcast::{Server, Update};

#[test]
fn a_stalled_subscriber_is_conflated_and_bounded_while_others_get_everything() {
    const TOPICS: usize = 10;
    const UPDATES: u64 = 100_000;
    const MARK: usize = 256 * 1024;
    // The healthy reader is never more than this many updates (about 110 KB,
    // under the mark) behind the publisher, however slowly this machine runs
    // it: the test is about the stalled one not hurting it, not about how
    // fast a debug-build client reads.
    const MAX_LAG: u64 = 1000;
    // One shard: the stalled and the healthy subscriber share an event loop.
    let server = Server::start(config().shards(1).conflate_bytes(MARK)).unwrap();
    let addr = server.local_addr();
    let mut stalled = Client::connect(addr);
    stalled.subscribe(&["S.*"]);
    let mut healthy = Client::connect(addr);
    healthy.subscribe(&["S.*"]);

    let got = Arc::new(AtomicU64::new(0));
    let got_by_reader = got.clone();
    let reader = std::thread::spawn(move || {
        let mut next = [1u64; TOPICS];
        for _ in 0..UPDATES {
            let ev = healthy.next_event();
            let t: usize = ev["topic"].as_str().unwrap()[2..].parse().unwrap();
            assert_eq!(
                ev["seq"].as_u64(),
                Some(next[t]),
                "healthy subscriber: gap or reorder: {ev}"
            );
            next[t] += 1;
            got_by_reader.fetch_add(1, Ordering::Relaxed);
        }
    });

    let p = server.publisher();
    let mut peak_queued = 0.0f64;
    for i in 0..UPDATES {
        p.publish(
            Update::new(format!("S.{}", i as usize % TOPICS))
                .bid(i as f64)
                .ask(i as f64 + 0.5),
        )
        .unwrap();
        // Paced by the healthy reader; the stalled one still falls far
        // behind (11 MB of updates, more than loopback socket buffers hold).
        if i + 1 - got.load(Ordering::Relaxed) > MAX_LAG {
            wait_until("the healthy reader catches up", || {
                i + 1 - got.load(Ordering::Relaxed) <= MAX_LAG / 2 || reader.is_finished()
            });
        }
        if i % 1000 == 0 {
            peak_queued = peak_queued.max(metric(&server, "tickcast_outbound_queued_bytes"));
        }
    }
    reader
        .join()
        .expect("the healthy subscriber got every update in order");
    peak_queued = peak_queued.max(metric(&server, "tickcast_outbound_queued_bytes"));
    // The stalled connection's queue never grows much past the conflation mark
    // (the kernel's socket buffers hold the rest of what it was sent).
    assert!(
        peak_queued <= (MARK + 64 * 1024) as f64,
        "outbound queue peaked at {peak_queued} bytes"
    );
    assert!(metric(&server, "tickcast_conflated_updates_total") > 0.0);

    // It reads again: seqs only increase per topic, and the newest value of
    // every topic arrives.
    let finals: Vec<u64> = (0..TOPICS)
        .map(|t| server.snapshot(&format!("S.{t}")).unwrap().seq)
        .collect();
    let mut last: HashMap<usize, u64> = HashMap::new();
    let mut received = 0u64;
    while (0..TOPICS).any(|t| last.get(&t) != Some(&finals[t])) {
        let ev = stalled
            .try_next_event(Duration::from_secs(10))
            .expect("the stalled subscriber gets the latest values");
        received += 1;
        let t: usize = ev["topic"].as_str().unwrap()[2..].parse().unwrap();
        let seq = ev["seq"].as_u64().unwrap();
        if let Some(prev) = last.insert(t, seq) {
            assert!(seq > prev, "topic S.{t} went backwards: {prev} -> {seq}");
        }
        if seq == finals[t] {
            let want = (finals[t] - 1) * TOPICS as u64 + t as u64;
            assert_eq!(
                ev["bid"].as_f64(),
                Some(want as f64),
                "latest value of S.{t}"
            );
        }
    }
    assert!(
        received < UPDATES,
        "conflation skipped updates ({received} of {UPDATES} delivered)"
    );
}

#[test]
fn a_reader_stalled_over_the_hard_limit_is_closed_with_1008() {
    // 20k topics, their snapshots (about 2 MB), then rounds of updates to
    // all of them. The reader never reads, so the small socket buffers fill
    // and the queue grows to the conflation mark (7 MiB, near the limit);
    // then the updates are held back, one per topic, and what the
    // connection holds (queue and held-back updates, about 12 MB) is over
    // the hard limit (8 MiB) but under twice it (past that the connection
    // would be cut off at once).
    const TOPICS: usize = 20_000;
    let mut cfg = config()
        .shards(1)
        .socket_send_buffer(16 * 1024)
        .conflate_bytes(7 << 20);
    cfg.slow_consumer_timeout = Duration::from_millis(500);
    let server = Server::start(cfg).unwrap();
    let p = server.publisher();
    for i in 0..TOPICS {
        p.publish(Update::new(format!("H.{i:06}")).bid(1.0).ask(2.0))
            .unwrap();
    }
    wait_until("every topic has its value", || {
        server.snapshot(&format!("H.{:06}", TOPICS - 1)).is_some()
    });
    let mut c = Client::connect(server.local_addr());
    c.send(serde_json::json!({"op":"subscribe","id":1,"topics":["H.*"]}));
    wait_until("the subscribe is answered", || {
        metric(&server, "tickcast_subscriptions") == 1.0
    });
    // The wildcard's snapshots stream out a chunk at a time: all of them
    // queued means it receives every topic's updates from here on.
    wait_until("the snapshots are queued", || {
        metric(&server, "tickcast_outbound_queued_bytes") > 1.5e6
    });
    // What it holds is sampled as it grows: on a slow machine the 500 ms
    // timeout may close it before the last round is published.
    let mut peak = 0.0f64;
    for round in 0..8 {
        for i in 0..TOPICS {
            p.publish(Update::new(format!("H.{i:06}")).bid(f64::from(round)))
                .unwrap();
            if i % 2_000 == 0 {
                peak = peak.max(metric(&server, "tickcast_outbound_queued_bytes"));
            }
        }
    }
    wait_until("its subscriptions end: closing", || {
        peak = peak.max(metric(&server, "tickcast_outbound_queued_bytes"));
        metric(&server, "tickcast_subscriptions") == 0.0
    });
    assert!(peak > 8.0 * 1024.0 * 1024.0, "queued only {peak} bytes");
    let mut snapshots = 0;
    let (code, reason) = loop {
        match c.ws.read() {
            Ok(tungstenite::Message::Text(_)) => snapshots += 1,
            Ok(tungstenite::Message::Close(Some(f))) => break (f.code, f.reason.to_string()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => panic!("no close frame after {snapshots} events: {e}"),
        }
    };
    assert_eq!(
        code,
        tungstenite::protocol::frame::coding::CloseCode::Policy
    );
    assert!(reason.contains("slow consumer"), "{reason}");
    assert!(
        snapshots < TOPICS,
        "the close came first; the backlog behind it was dropped"
    );
    wait_until("the close is counted", || {
        metric(&server, "tickcast_slow_consumer_closes_total") == 1.0
    });
}
