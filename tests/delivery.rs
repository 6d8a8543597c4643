//! Market-data delivery semantics, over real sockets: field-exact
//! conflation, per-subscription rate caps, epochs, resume with `since`,
//! stale and live topics, and clears.

mod common;

use common::*;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::{Prices, Server, Update};
use tungstenite::Message;

/// The price fields, by their names on the wire.
const FIELDS: [&str; 7] = tickcast::Prices::NAMES;

/// What a client holds for one topic: the fields, the last seq and epoch.
#[derive(Debug, Default, Clone)]
struct Held {
    fields: Map<String, Value>,
    seq: u64,
    epoch: Option<String>,
}

/// Applies a snapshot (replaces) or an update (merges) the way a client
/// following PROTOCOL.md does, checking that seq only moves forward.
fn apply(state: &mut HashMap<String, Held>, ev: &Value) {
    let topic = ev["topic"].as_str().unwrap().to_string();
    let seq = ev["seq"].as_u64().unwrap();
    let held = state.entry(topic.clone()).or_default();
    match ev["event"].as_str().unwrap() {
        "snapshot" => {
            held.fields.clear();
            held.epoch = Some(ev["epoch"].as_str().unwrap().to_string());
        }
        "update" => {
            if let Some(e) = ev.get("epoch").and_then(Value::as_str) {
                assert_eq!(
                    seq, 1,
                    "only a numbering's first update names its epoch: {ev}"
                );
                held.epoch = Some(e.to_string());
            } else {
                assert!(
                    seq > held.seq,
                    "{topic}: seq went from {} to {seq}: {ev}",
                    held.seq
                );
            }
        }
        other => panic!("not a price event: {other}"),
    }
    for f in FIELDS {
        if let Some(v) = ev.get(f) {
            held.fields.insert(f.into(), v.clone());
        }
    }
    held.seq = seq;
}

/// The server's value of a topic as the protocol's fields.
fn fields_of(p: &Prices) -> Map<String, Value> {
    let all = [
        p.bid,
        p.ask,
        p.last,
        p.bid_size,
        p.ask_size,
        p.last_size,
        p.volume,
    ];
    FIELDS
        .iter()
        .zip(all)
        .filter_map(|(n, v)| Some((n.to_string(), json!(v?))))
        .collect()
}

/// One update that changes a single field, which one depending on `i`.
fn one_field(topic: &str, i: u64) -> Update {
    let u = Update::new(topic);
    let v = i as f64;
    match i % 3 {
        0 => u.bid(v),
        1 => u.ask(v),
        _ => u.last(v),
    }
}

/// Reads events until `done` holds for the client's state.
fn read_until(
    c: &mut Client,
    state: &mut HashMap<String, Held>,
    mut done: impl FnMut(&HashMap<String, Held>) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    while !done(state) {
        let ev = c
            .try_next_event(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("stalled; state {state:?}"));
        if matches!(ev["event"].as_str(), Some("snapshot" | "update")) {
            apply(state, &ev);
        }
        seen.push(ev);
    }
    seen
}

#[test]
fn a_conflated_reader_ends_with_exactly_the_servers_value() {
    const TOPICS: u64 = 4;
    // About 10 MB of updates: more than loopback socket buffers hold, so the
    // stalled reader's queue passes the mark.
    const UPDATES: u64 = 150_000;
    // The healthy reader stays within ~20 KB of the publisher, under the mark,
    // however slowly a debug build reads: it must not be conflated itself.
    const MAX_LAG: u64 = 300;
    let server = Server::start(config().shards(1).conflate_bytes(64 * 1024)).unwrap();
    let addr = server.local_addr();
    for t in 0..TOPICS {
        server
            .publisher()
            .publish(Update::new(format!("F.{t}")).bid(0.0).ask(0.0).last(0.0))
            .unwrap();
    }
    wait_until("first values", || server.topic_count() == TOPICS as usize);
    let mut stalled = Client::connect(addr);
    stalled.subscribe(&["F.*"]);
    let mut healthy = Client::connect(addr);
    healthy.subscribe(&["F.*"]);
    let got = Arc::new(AtomicU64::new(0));
    let got_by_reader = got.clone();
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        while n < UPDATES {
            let ev = healthy.next_event();
            if ev["event"] == "update" {
                n += 1;
                got_by_reader.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Alternating single-field updates: a reader that got only the newest
    // update of each topic would miss two fields of three.
    let p = server.publisher();
    for i in 0..UPDATES {
        p.publish(one_field(&format!("F.{}", i % TOPICS), i))
            .unwrap();
        if i + 1 - got.load(Ordering::Relaxed) > MAX_LAG {
            wait_until("the healthy reader catches up", || {
                i + 1 - got.load(Ordering::Relaxed) <= MAX_LAG / 2 || reader.is_finished()
            });
        }
    }
    reader.join().unwrap();
    assert!(
        metric(&server, "tickcast_conflated_updates_total") > 0.0,
        "the stalled reader was never conflated"
    );
    let finals: HashMap<String, tickcast::Snapshot> = (0..TOPICS)
        .map(|t| {
            (
                format!("F.{t}"),
                server.snapshot(&format!("F.{t}")).unwrap(),
            )
        })
        .collect();
    let mut state = HashMap::new();
    let seen = read_until(&mut stalled, &mut state, |s| {
        finals
            .iter()
            .all(|(t, snap)| s.get(t).is_some_and(|h| h.seq == snap.seq))
    });
    let merged = seen
        .iter()
        .filter(|e| e["conflated"].as_u64().is_some_and(|n| n > 1))
        .count();
    assert!(merged > 0, "no update said how many it stands for");
    assert!(
        seen.len() < UPDATES as usize,
        "{} events for {UPDATES} updates",
        seen.len()
    );
    for (t, snap) in &finals {
        assert_eq!(
            state[t].fields,
            fields_of(&snap.prices),
            "{t}: the client's merged value"
        );
    }
}

#[test]
fn max_rate_caps_events_per_second_and_delivers_the_final_value() {
    let server = server();
    let addr = server.local_addr();
    let p = server.publisher();
    p.publish(Update::new("RT.A").bid(0.0)).unwrap();
    p.publish(Update::new("RT.B").bid(0.0)).unwrap();
    wait_until("first values", || server.topic_count() == 2);
    let mut capped = Client::connect(addr);
    let id = capped.command(json!({"op":"subscribe","topics":["RT.*"],"max_rate":5}));
    assert_eq!(capped.next_event()["id"], id);
    for _ in 0..2 {
        assert_eq!(capped.next_event()["event"], "snapshot");
    }
    // RT.B is also covered by an uncapped exact subscription: the least
    // restrictive applies, so it gets every update.
    let id = capped.command(json!({"op":"subscribe","topics":["RT.B"]}));
    assert_eq!(capped.next_event()["id"], id);

    // 1,000 updates a second to each topic, for 2 seconds.
    let start = Instant::now();
    let publisher = std::thread::spawn(move || {
        for i in 1..=2000u64 {
            p.publish(one_field("RT.A", i)).unwrap();
            p.publish(one_field("RT.B", i)).unwrap();
            let due = start + Duration::from_micros(1000 * i);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
    let mut state = HashMap::new();
    let mut a_events: Vec<Instant> = Vec::new();
    let mut b_events = 0;
    while !publisher.is_finished() {
        if let Some(ev) = capped.try_next_event(Duration::from_millis(50)) {
            apply(&mut state, &ev);
            match ev["topic"].as_str() {
                Some("RT.A") => a_events.push(Instant::now()),
                _ => b_events += 1,
            }
        }
    }
    publisher.join().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    // Trailing edge: the last value arrives within 1/5 s after it changed.
    wait_until("sequenced", || {
        server.snapshot("RT.A").unwrap().seq == 2001 && server.snapshot("RT.B").unwrap().seq == 2001
    });
    let final_a = server.snapshot("RT.A").unwrap();
    let final_b = server.snapshot("RT.B").unwrap();
    read_until(&mut capped, &mut state, |s| {
        s["RT.A"].seq == final_a.seq && s["RT.B"].seq == final_b.seq
    });
    let during = a_events.len() as f64;
    assert!(
        during <= 5.0 * elapsed + 2.0,
        "{during} events of RT.A in {elapsed:.2} s at max_rate 5"
    );
    assert!(
        during >= 5.0,
        "only {during} events of RT.A in {elapsed:.2} s"
    );
    for pair in a_events.windows(2) {
        // Never two within much less than 1/5 s (scheduling slack allowed).
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(150),
            "events {:?} apart",
            pair[1] - pair[0]
        );
    }
    assert!(
        b_events >= 1900,
        "the uncapped subscription got {b_events} of 2000"
    );
    assert_eq!(state["RT.A"].fields, fields_of(&final_a.prices));
    assert_eq!(state["RT.B"].fields, fields_of(&final_b.prices));
}

#[test]
fn the_servers_max_rate_is_the_default_and_the_cap() {
    let server = Server::start(config().max_rate(Some(4.0))).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    p.publish(Update::new("SR.A").bid(0.0)).unwrap();
    wait_until("first value", || server.topic_count() == 1);
    let mut asks_more = Client::connect(addr);
    let id = asks_more.command(json!({"op":"subscribe","topics":["SR.A"],"max_rate":100}));
    assert_eq!(asks_more.next_event()["id"], id);
    assert_eq!(asks_more.next_event()["event"], "snapshot");
    let mut default = Client::connect(addr);
    default.subscribe(&["SR.A"]);
    assert_eq!(default.next_event()["event"], "snapshot");
    let start = Instant::now();
    for i in 1..=1000u64 {
        p.publish(one_field("SR.A", i)).unwrap();
        std::thread::sleep(Duration::from_micros(1000));
    }
    let elapsed = start.elapsed().as_secs_f64();
    wait_until("sequenced", || server.snapshot("SR.A").unwrap().seq == 1001);
    let last = server.snapshot("SR.A").unwrap();
    for c in [&mut asks_more, &mut default] {
        let mut state = HashMap::new();
        let seen = read_until(c, &mut state, |s| {
            s.get("SR.A").is_some_and(|h| h.seq == last.seq)
        });
        assert!(
            (seen.len() as f64) <= 4.0 * (elapsed + 0.5) + 2.0,
            "{} events in {elapsed:.2} s with the server capping at 4/s",
            seen.len()
        );
    }
}

#[test]
fn resume_from_history_sends_exactly_the_missed_updates() {
    let server = Server::start(config().history(16, 1 << 20)).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    p.publish(Update::new("RS.A").bid(1.0)).unwrap();
    wait_until("first value", || server.topic_count() == 1);
    let mut first = Client::connect(addr);
    let id = first.command(json!({"op":"subscribe","topics":["RS.A"]}));
    let ack = first.next_event();
    assert_eq!(ack["id"], id);
    let snap = first.next_event();
    assert_eq!(snap["event"], "snapshot");
    let epoch = snap["epoch"].as_str().unwrap().to_string();
    assert_eq!(ack["epochs"]["RS.A"], epoch.as_str(), "{ack}");
    for i in 2..=5 {
        p.publish(one_field("RS.A", i)).unwrap();
        assert_eq!(first.next_event()["seq"], i);
    }
    drop(first);
    for i in 6..=12 {
        p.publish(one_field("RS.A", i)).unwrap();
    }
    wait_until("sequenced", || server.snapshot("RS.A").unwrap().seq == 12);

    // Back, through a pattern: exactly 6..=12 from history, no snapshot.
    let mut back = Client::connect(addr);
    let id = back.command(json!({"op":"subscribe","topics":["RS.*"],
        "since":{"RS.A":{"seq":5,"epoch":epoch}}}));
    let ack = back.next_event();
    assert_eq!(
        (ack["id"].clone(), ack["recovered"].clone()),
        (json!(id), json!(["RS.A"])),
        "{ack}"
    );
    for i in 6..=12 {
        let ev = back.next_event();
        assert_eq!(
            (ev["event"].as_str(), ev["seq"].as_u64()),
            (Some("update"), Some(i)),
            "{ev}"
        );
    }
    // Then live, without a gap.
    p.publish(one_field("RS.A", 13)).unwrap();
    assert_eq!(back.next_event()["seq"], 13);
    assert!(
        back.try_next_event(Duration::from_millis(100)).is_none(),
        "a duplicate"
    );

    // Too old for the history (16 kept: 15 to 30), or another epoch: a
    // snapshot, not recovered.
    for i in 14..=30 {
        p.publish(one_field("RS.A", i)).unwrap();
    }
    wait_until("sequenced", || server.snapshot("RS.A").unwrap().seq == 30);
    for since in [
        json!({"seq":13,"epoch":epoch}),
        json!({"seq":29,"epoch":"00000000"}),
    ] {
        let mut c = Client::connect(addr);
        c.command(json!({"op":"subscribe","topics":["RS.A"],"since":{"RS.A":since}}));
        let ack = c.next_event();
        assert!(ack.get("recovered").is_none(), "{ack}");
        let snap = c.next_event();
        assert_eq!(snap["event"], "snapshot", "{snap}");
    }
    assert_eq!(metric(&server, "tickcast_history_len"), 16.0);
    assert_eq!(
        metric(&server, "tickcast_history_budget_bytes"),
        (1 << 20) as f64
    );
    let entries = metric(&server, "tickcast_history_entries");
    assert!(
        entries > 0.0 && entries <= 16.0,
        "{entries} history entries for one topic capped at 16"
    );
}

#[test]
fn resume_across_a_daemon_restart_gets_a_snapshot_with_a_new_epoch() {
    let mut d = Daemon::start(&["--demo", "--demo-rate", "200", "--listen", "127.0.0.1:0"]);
    let addr = d.addr;
    let mut c = Client::connect(addr);
    let has_btc = |c: &mut Client| {
        // BTC-USD itself: its book and trades topics may hold a value
        // first (another router may number them).
        c.command(json!({"op":"topics","prefix":"BTC-USD"}));
        c.next_event()["topics"]
            .as_array()
            .is_some_and(|t| t.iter().any(|n| n == "BTC-USD"))
    };
    wait_until("the demo feed publishes", || has_btc(&mut c));
    c.command(json!({"op":"subscribe","topics":["BTC-USD"]}));
    let ack = c.next_event();
    let snap = c.next_event();
    assert_eq!(snap["event"], "snapshot");
    let (seq, epoch) = (
        snap["seq"].as_u64().unwrap(),
        snap["epoch"].as_str().unwrap().to_string(),
    );
    assert_eq!(ack["epochs"]["BTC-USD"], epoch.as_str());
    drop(c);
    assert_eq!(d.sigterm(), 0);
    let port = addr.port().to_string();
    let _d2 = Daemon::start(&[
        "--demo",
        "--demo-rate",
        "200",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut c = Client::connect(addr);
    wait_until("the demo feed publishes again", || has_btc(&mut c));
    c.command(json!({"op":"subscribe","topics":["BTC-USD"],"since":{"BTC-USD":{"seq":seq,"epoch":epoch}}}));
    let ack = c.next_event();
    assert!(ack.get("recovered").is_none(), "{ack}");
    let snap = c.next_event();
    assert_eq!(snap["event"], "snapshot", "{snap}");
    assert_ne!(
        snap["epoch"].as_str(),
        Some(epoch.as_str()),
        "a restart starts a new epoch"
    );
}

#[test]
fn a_topic_goes_stale_when_its_publisher_leaves_and_live_on_its_next_update() {
    const TOKEN: &str = "publisher-token-1";
    let server = Server::start(config().publisher_tokens(vec![TOKEN.into()])).unwrap();
    let addr = server.local_addr();
    let mut sub = Client::connect(addr);
    sub.subscribe(&["ST.A"]);
    let mut ws = raw_publisher(addr, TOKEN);
    ws.send(Message::binary(tickcast::publish::encode(&[Update::new(
        "ST.A",
    )
    .bid(1.0)])))
        .unwrap();
    let first = sub.next_event();
    assert_eq!(
        (first["seq"].as_u64(), first["epoch"].is_string()),
        (Some(1), true),
        "{first}"
    );
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    let stale = sub.next_event();
    assert_eq!(
        stale,
        json!({"event":"status","topic":"ST.A","state":"stale"})
    );
    let mut late = Client::connect(addr);
    late.subscribe(&["ST.A"]);
    let snap = late.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["stale"].as_bool()),
        (Some("snapshot"), Some(true)),
        "{snap}"
    );
    server
        .publisher()
        .publish(Update::new("ST.A").ask(2.0))
        .unwrap();
    for c in [&mut sub, &mut late] {
        assert_eq!(
            c.next_event(),
            json!({"event":"status","topic":"ST.A","state":"live"})
        );
        assert_eq!(c.next_event()["seq"], 2);
    }
    // Explicitly, from an embedded publisher.
    server.publisher().mark_stale("ST.A").unwrap();
    assert_eq!(sub.next_event()["state"], "stale");
    server.publisher().mark_live("ST.A").unwrap();
    assert_eq!(sub.next_event()["state"], "live");
}

#[test]
fn a_quiet_topic_goes_stale_after_stale_after() {
    let server = Server::start(config().stale_after(Some(Duration::from_millis(300)))).unwrap();
    let mut sub = Client::connect(server.local_addr());
    sub.subscribe(&["Q.A", "Q.B"]);
    let p = server.publisher();
    p.publish(Update::new("Q.A").bid(1.0)).unwrap();
    // Q.B keeps its own, longer limit.
    p.set_stale_after("Q.B", Some(Duration::from_secs(30)))
        .unwrap();
    p.publish(Update::new("Q.B").bid(1.0)).unwrap();
    let start = Instant::now();
    let mut events = Vec::new();
    while start.elapsed() < Duration::from_millis(1500) {
        if let Some(ev) = sub.try_next_event(Duration::from_millis(100)) {
            events.push(ev);
        }
    }
    let stale: Vec<&Value> = events.iter().filter(|e| e["event"] == "status").collect();
    assert_eq!(
        stale,
        [&json!({"event":"status","topic":"Q.A","state":"stale"})],
        "{events:?}"
    );
}

#[test]
fn a_cleared_topic_restarts_at_seq_1_in_a_new_epoch() {
    const TOKEN: &str = "publisher-token-2";
    let server = Server::start(config().publisher_tokens(vec![TOKEN.into()])).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    p.publish(Update::new("CL.A").bid(1.0)).unwrap();
    wait_until("first value", || server.snapshot("CL.A").is_some());
    let mut sub = Client::connect(addr);
    sub.subscribe(&["CL.A"]);
    let snap = sub.next_event();
    let old_epoch = snap["epoch"].as_str().unwrap().to_string();
    p.publish(Update::new("CL.A").ask(2.0)).unwrap();
    assert_eq!(sub.next_event()["seq"], 2);
    p.clear("CL.A").unwrap();
    assert_eq!(sub.next_event(), json!({"event":"cleared","topic":"CL.A"}));
    wait_until("cleared", || server.snapshot("CL.A").is_none());
    sub.command(json!({"op":"topics"}));
    assert_eq!(sub.next_event()["topics"], json!([]));
    // The exact subscription stays: the next update is seq 1, naming the new epoch.
    p.publish(Update::new("CL.A").last(3.0)).unwrap();
    let first = sub.next_event();
    assert_eq!(
        (first["seq"].as_u64(), first["last"].as_f64()),
        (Some(1), Some(3.0)),
        "{first}"
    );
    let new_epoch = first["epoch"].as_str().unwrap();
    assert_ne!(new_epoch, old_epoch);
    let snap = server.snapshot("CL.A").unwrap();
    assert_eq!(
        (snap.seq, snap.prices.bid, snap.epoch.as_str()),
        (1, None, new_epoch)
    );

    // The same from a network publisher.
    let mut ws = raw_publisher(addr, TOKEN);
    let clear = rmp_serde::to_vec_named(&json!({"topic":"CL.A","clear":true})).unwrap();
    ws.send(Message::binary(clear)).unwrap();
    assert_eq!(sub.next_event()["event"], "cleared");

    // And from a RemotePublisher, in order with its updates.
    let remote = tickcast::RemotePublisher::connect(tickcast::RemoteConfig::new(
        format!("ws://{addr}/publish"),
        TOKEN,
    ))
    .unwrap();
    remote.publish(Update::new("CL.A").bid(5.0)).unwrap();
    remote.clear("CL.A").unwrap();
    remote.publish(Update::new("CL.A").bid(6.0)).unwrap();
    remote.flush(Duration::from_secs(10)).unwrap();
    let first = sub.next_event();
    assert_eq!(
        (first["seq"].as_u64(), first["bid"].as_f64()),
        (Some(1), Some(5.0)),
        "{first}"
    );
    assert_eq!(sub.next_event(), json!({"event":"cleared","topic":"CL.A"}));
    let again = sub.next_event();
    assert_eq!(
        (again["seq"].as_u64(), again["bid"].as_f64()),
        (Some(1), Some(6.0)),
        "{again}"
    );
    assert!(remote.clear("bad topic").is_err());
}

/// Many subscribers with random rate caps, slow readers that get
/// conflated, and reconnects that resume, against random single-field
/// publishes: every client ends with exactly the server's value of every
/// topic, and never sees seq go backwards or repeat within an epoch.
#[test]
fn randomized_clients_always_end_with_the_servers_value() {
    use rand::{Rng, SeedableRng};
    const TOPICS: usize = 6;
    const UPDATES: u64 = 12_000;
    let seed = test_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = Server::start(config().conflate_bytes(4096).history(64, 1 << 20)).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    for t in 0..TOPICS {
        p.publish(Update::new(format!("RND.{t}")).bid(0.0)).unwrap();
    }
    wait_until("first values", || server.topic_count() == TOPICS);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..10 {
        let rate: Option<u32> = [None, None, Some(5), Some(50)][rng.random_range(0..4)];
        let slow = rng.random_bool(0.4);
        let resumes = if rng.random_bool(0.5) {
            rng.random_range(1..4)
        } else {
            0
        };
        let sleep_us = rng.random_range(50..400);
        let done = done.clone();
        clients.push(std::thread::spawn(move || {
            let subscribe = |c: &mut Client, since: Value| {
                let mut cmd = json!({"op":"subscribe","topics":["RND.*"],"since":since});
                if let Some(r) = rate {
                    cmd["max_rate"] = json!(r);
                }
                c.command(cmd);
            };
            let mut c = Client::connect(addr);
            subscribe(&mut c, json!({}));
            let mut state: HashMap<String, Held> = HashMap::new();
            let mut read = 0u64;
            let mut left = resumes;
            while !done.load(Ordering::Relaxed) {
                let Some(ev) = c.try_next_event(Duration::from_millis(20)) else {
                    continue;
                };
                if matches!(ev["event"].as_str(), Some("snapshot" | "update")) {
                    apply(&mut state, &ev);
                }
                read += 1;
                if slow {
                    std::thread::sleep(Duration::from_micros(sleep_us));
                }
                if left > 0 && read % 700 == 0 {
                    // Drop the connection and come back with where we were.
                    left -= 1;
                    let since: Map<String, Value> = state
                        .iter()
                        .filter_map(|(t, h)| {
                            Some((t.clone(), json!({"seq":h.seq,"epoch":h.epoch.clone()?})))
                        })
                        .collect();
                    c = Client::connect(addr);
                    subscribe(&mut c, Value::Object(since));
                }
            }
            (n, c, state)
        }));
    }
    let mut prng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    for i in 0..UPDATES {
        let t = prng.random_range(0..TOPICS);
        p.publish(one_field(&format!("RND.{t}"), i)).unwrap();
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    wait_until("the router sequenced everything", || {
        metric(&server, "tickcast_updates_ingested_total") >= (UPDATES + TOPICS as u64) as f64
    });
    let finals: HashMap<String, tickcast::Snapshot> = (0..TOPICS)
        .map(|t| {
            (
                format!("RND.{t}"),
                server.snapshot(&format!("RND.{t}")).unwrap(),
            )
        })
        .collect();
    done.store(true, Ordering::Relaxed);
    for handle in clients {
        let (n, mut c, mut state) = handle.join().expect("client thread");
        read_until(&mut c, &mut state, |s| {
            finals
                .iter()
                .all(|(t, snap)| s.get(t).is_some_and(|h| h.seq == snap.seq))
        });
        for (t, snap) in &finals {
            assert_eq!(
                state[t].fields,
                fields_of(&snap.prices),
                "client {n}, {t} (seed {seed})"
            );
            assert_eq!(state[t].epoch.as_deref(), Some(snap.epoch.as_str()));
        }
    }
}
