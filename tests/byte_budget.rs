//! A byte budget per connection (`max_bytes_per_sec`): a subscriber at
//! 10 KB/s on a feed of about 1 MB/s gets no more than its budget, its
//! updates merged field by field (`conflated`), and ends with exactly the
//! server's values.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tickcast::{Server, Update};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

const TOPICS: usize = 100;
const BUDGET: f64 = 10_000.0;

fn connect(addr: std::net::SocketAddr, query: &str) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = format!("ws://{addr}/ws{query}")
        .into_client_request()
        .unwrap();
    let (ws, _) = tungstenite::client(req, stream).expect("handshake");
    Client::from_ws(ws)
}

/// The client's fields equal the server's. serde_json's default float
/// parser (without `float_roundtrip`) may land one unit in the last place
/// off the number the server wrote exactly, so the test allows that much.
fn same(v: &Value, p: &tickcast::Prices) -> bool {
    let eq = |got: Option<f64>, want: Option<f64>| match (got, want) {
        (Some(a), Some(b)) => (a - b).abs() <= b.abs() * 1e-15,
        (a, b) => a == b,
    };
    eq(v["bid"].as_f64(), p.bid)
        && eq(v["ask"].as_f64(), p.ask)
        && eq(v["volume"].as_f64(), p.volume)
}

/// Applies one event to the client's view of each topic.
fn apply(values: &mut HashMap<String, (u64, Value)>, conflated: &mut u64, v: Value) {
    let Some(topic) = v["topic"].as_str().map(str::to_string) else {
        return;
    };
    let entry = values.entry(topic).or_insert((0, json!({})));
    entry.0 = v["seq"].as_u64().unwrap();
    for f in ["bid", "ask", "volume"] {
        if !v[f].is_null() {
            entry.1[f] = v[f].clone();
        }
    }
    *conflated += v["conflated"].as_u64().unwrap_or(1).saturating_sub(1);
}

#[test]
fn a_subscriber_at_10_kb_per_s_on_a_1_mb_per_s_feed_gets_its_budget_and_exact_values() {
    let server = Server::start(config().shards(1)).unwrap();
    let addr = server.local_addr();
    let topics: Vec<String> = (0..TOPICS).map(|i| format!("F{i:03}")).collect();
    let p = server.publisher();
    for t in &topics {
        p.publish(Update::new(t).bid(0.0).ask(0.5)).unwrap();
    }
    wait_until("every topic has a value", || {
        server.snapshot("F099").is_some()
    });

    let mut c = connect(addr, "?max_bytes_per_sec=10000");
    c.send(json!({"op": "subscribe", "topics": ["F*"], "id": 1}));

    // The feed: about 1 MB/s of JSON events for 4 s, on another thread.
    let feed = {
        let (p, topics) = (server.publisher(), topics.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(4) {
                for _ in 0..90 {
                    n += 1;
                    let t = &topics[(n as usize * 7) % TOPICS];
                    let px = 100.0 + (n % 1000) as f64 / 100.0;
                    p.publish(Update::new(t).bid(px).ask(px + 0.5).volume(n as f64))
                        .unwrap();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };

    let mut values: HashMap<String, (u64, Value)> = HashMap::new();
    let (mut bytes, mut conflated) = (0usize, 0u64);
    let started = Instant::now();
    let mut window = (0usize, None::<Instant>);
    let read_one = |c: &mut Client, bytes: &mut usize| match c.ws.read() {
        Ok(Message::Text(t)) => {
            *bytes += t.len() + 2;
            Some(serde_json::from_str::<Value>(&t).unwrap())
        }
        Ok(_) => None,
        Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("{e}"),
    };
    while !feed.is_finished() {
        if let Some(v) = read_one(&mut c, &mut bytes) {
            apply(&mut values, &mut conflated, v);
        }
        // The rate is measured from the second second of the feed to its
        // end: the snapshots and the first burst are behind it.
        let t = started.elapsed();
        if t >= Duration::from_secs(1) && window.1.is_none() {
            window = (bytes, Some(Instant::now()));
        }
    }
    let sent = feed.join().unwrap();
    let (from, since) = (window.0, window.1.expect("the feed ran over a second"));
    let rate = (bytes - from) as f64 / since.elapsed().as_secs_f64();
    eprintln!("{sent} updates published; received {bytes} bytes, {rate:.0} B/s in the window");
    assert!(
        rate <= BUDGET * 1.3,
        "{rate:.0} B/s is over the 10,000 B/s budget"
    );
    assert!(
        rate >= BUDGET * 0.3,
        "{rate:.0} B/s: the budget is not used"
    );
    assert!(conflated > 1000, "{conflated} updates merged");

    // The feed has stopped: within a few seconds the held-back updates
    // have gone out and every value equals the server's.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = topics.iter().all(|t| {
            let s = server.snapshot(t).unwrap();
            values
                .get(t)
                .is_some_and(|(seq, v)| *seq == s.seq && same(v, &s.prices))
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let behind: Vec<String> = topics
                .iter()
                .filter_map(|t| {
                    let s = server.snapshot(t).unwrap();
                    let (seq, v) = values.get(t).cloned().unwrap_or_default();
                    (seq != s.seq || !same(&v, &s.prices))
                        .then(|| format!("{t}: got seq {seq} {v}, server {} {:?}", s.seq, s.prices))
                })
                .collect();
            panic!("values never caught up with the server's: {behind:?}");
        }
        if let Some(v) = read_one(&mut c, &mut bytes) {
            apply(&mut values, &mut conflated, v);
        }
    }
}

#[test]
fn a_client_can_only_lower_the_budget_and_a_bad_one_is_refused() {
    const ADMIN: &str = "budget-admin-token";
    let cfg = config()
        .max_bytes_per_sec(50_000)
        .admin_tokens(vec![ADMIN.into()]);
    let server = Server::start(cfg).unwrap();
    let addr = server.local_addr();
    let resp = http_raw(
        addr,
        b"GET /ws?max_bytes_per_sec=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("max_bytes_per_sec"), "{resp}");

    let admin_budget = |server: &Server| -> Vec<Option<u64>> {
        let req = format!(
            "GET /admin/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
        );
        let resp = http_raw(server.local_addr(), req.as_bytes());
        let body: Value = serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
        let conns = body["connections"].as_array().unwrap().clone();
        conns
            .iter()
            .map(|c| c["max_bytes_per_sec"].as_u64())
            .collect()
    };
    let _low = connect(addr, "?max_bytes_per_sec=2000");
    let _high = connect(addr, "?max_bytes_per_sec=900000");
    let _plain = connect(addr, "");
    wait_until("three connections", || admin_budget(&server).len() == 3);
    let mut got = admin_budget(&server);
    got.sort();
    assert_eq!(got, [Some(2000), Some(50_000), Some(50_000)]);
}
