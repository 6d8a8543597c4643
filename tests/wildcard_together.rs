//! Wildcard subscribers that arrive together join together (one walk of
//! the topic table, each snapshot encoded once per format for all of them)
//! and part as each reads at its own pace. Whatever group a join was in,
//! every subscriber gets each topic's snapshot once, with its own format's
//! encoding of the right value, and then every update.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use tickcast::Update;

const TOPICS: usize = 3_000;

#[test]
fn subscribers_that_join_together_each_get_every_snapshot_once_then_every_update() {
    // One shard, so all of them are in the same index.
    let server = tickcast::Server::start(config().shards(1)).unwrap();
    let p = server.publisher();
    let name = |i: usize| format!("G.{i:04}");
    for i in 0..TOPICS {
        p.publish(Update::new(name(i)).bid(i as f64)).unwrap();
    }
    wait_until("every topic has its value", || {
        (0..TOPICS).all(|i| server.snapshot(&name(i)).is_some())
    });
    // Three JSON and three MessagePack subscribers send their subscribes
    // back to back; then each reads all it is owed, one after the other
    // (those not read yet stop taking snapshots and go on later).
    let mut clients: Vec<Client> = (0..6)
        .map(|n| {
            if n % 2 == 0 {
                Client::connect(server.local_addr())
            } else {
                Client::connect_msgpack(server.local_addr())
            }
        })
        .collect();
    for c in &mut clients {
        c.command(json!({"op": "subscribe", "topics": ["G.*"]}));
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let mut got: HashMap<String, f64> = HashMap::new();
        while got.len() < TOPICS {
            let ev = c.next_event();
            if ev["event"] == "subscribed" {
                continue;
            }
            assert_eq!(ev["event"], "snapshot", "client {n}: {ev}");
            assert_eq!(ev["seq"], 1, "client {n}: {ev}");
            let topic = ev["topic"].as_str().unwrap().to_string();
            let bid = ev["bid"].as_f64().unwrap();
            assert!(got.insert(topic, bid).is_none(), "client {n}: twice: {ev}");
        }
        for i in 0..TOPICS {
            assert_eq!(got[&name(i)], i as f64, "client {n}, {}", name(i));
        }
    }
    // Then the updates, from seq 2, to every one of them.
    for i in 0..TOPICS {
        p.publish(Update::new(name(i)).bid(i as f64 + 0.5)).unwrap();
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let mut seen = vec![false; TOPICS];
        for _ in 0..TOPICS {
            let ev = c.next_event();
            assert_eq!(ev["event"], "update", "client {n}: {ev}");
            assert_eq!(ev["seq"], 2, "client {n}: {ev}");
            let i: usize = ev["topic"].as_str().unwrap()[2..].parse().unwrap();
            assert_eq!(ev["bid"].as_f64(), Some(i as f64 + 0.5), "client {n}: {ev}");
            assert!(!std::mem::replace(&mut seen[i], true), "client {n}: {ev}");
        }
    }
}
