//! Batch sessions (`tickcast.json+batch`, `tickcast.msgpack+batch`): the
//! events of one flush arrive as one WebSocket message, JSON one per line,
//! MessagePack values back to back; nothing is lost or reordered.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use tickcast::{Server, Update};
use tungstenite::Message;

/// Reads messages until `done` says so; returns the events and how many
/// messages carried them.
fn read_batches(c: &mut Client, mut done: impl FnMut(&Value) -> bool) -> (Vec<Value>, usize) {
    let (mut events, mut messages) = (Vec::new(), 0);
    loop {
        let parsed: Vec<Value> = match c.ws.read().expect("read") {
            Message::Text(t) => t
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
                .collect(),
            Message::Binary(b) => {
                let mut cur = std::io::Cursor::new(&b[..]);
                let mut vals = Vec::new();
                while (cur.position() as usize) < b.len() {
                    vals.push(
                        rmp_serde::from_read(&mut cur).expect("MessagePack values back to back"),
                    );
                }
                vals
            }
            _ => continue,
        };
        messages += 1;
        for v in parsed {
            let stop = done(&v);
            events.push(v);
            if stop {
                return (events, messages);
            }
        }
    }
}

fn check_batched(protocol: &str) {
    let server = Server::start(config().shards(1)).unwrap();
    let mut c = Client::connect_with(server.local_addr(), Some(protocol));
    c.msgpack = protocol.starts_with("tickcast.msgpack");
    let topics: Vec<String> = (0..50).map(|i| format!("B{i}")).collect();
    let p = server.publisher();
    for t in &topics {
        p.publish(Update::new(t).bid(0.0)).unwrap();
    }
    wait_until("50 topics", || server.snapshot("B49").is_some());
    c.command(json!({"op": "subscribe", "topics": ["B*"]}));
    const N: u64 = 200;
    for i in 1..=N {
        for t in &topics {
            p.publish(Update::new(t).bid(i as f64)).unwrap();
        }
    }
    let mut last: HashMap<String, (u64, f64)> = HashMap::new();
    // Topics may be sequenced by different routers: wait for every one's last.
    let mut at_end = std::collections::HashSet::new();
    let (events, messages) = read_batches(&mut c, |v| {
        if v["bid"].as_f64() == Some(N as f64) {
            at_end.insert(v["topic"].as_str().unwrap().to_string());
        }
        at_end.len() == topics.len()
    });
    for v in &events {
        let Some(topic) = v["topic"].as_str() else {
            continue;
        };
        let seq = v["seq"].as_u64().unwrap();
        let prev = last.get(topic).map_or(0, |p| p.0);
        assert!(seq > prev, "{topic}: seq {seq} after {prev}, in order");
        last.insert(topic.to_string(), (seq, v["bid"].as_f64().unwrap()));
    }
    for t in &topics {
        let (seq, bid) = last[t.as_str()];
        let snap = server.snapshot(t).unwrap();
        assert_eq!(
            (seq, bid),
            (snap.seq, N as f64),
            "{t} ends at the server's value"
        );
    }
    assert!(
        messages * 4 < events.len(),
        "{} events came in {messages} messages: batched",
        events.len()
    );
}

#[test]
fn a_json_batch_session_gets_many_events_per_message_in_order() {
    check_batched("tickcast.json+batch");
}

#[test]
fn a_msgpack_batch_session_gets_values_back_to_back() {
    check_batched("tickcast.msgpack+batch");
}

#[test]
fn a_plain_session_still_gets_one_event_per_message() {
    let server = server();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["ONE"]);
    let p = server.publisher();
    for i in 0..100 {
        p.publish(Update::new("ONE").bid(i as f64)).unwrap();
    }
    let (events, messages) = read_batches(&mut c, |v| v["bid"] == json!(99.0));
    assert_eq!(events.len(), messages);
}
