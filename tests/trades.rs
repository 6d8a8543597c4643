//! Issue 14, trade topics (`….trades`): every trade delivered, never
//! merged or paced; a subscription's snapshot lists the last trades.

mod common;

use common::Client;
use serde_json::json;
use tickcast::{Server, Update};

fn trade(topic: &str, price: f64, size: f64) -> Update {
    Update::new(topic).last(price).last_size(size)
}

#[test]
fn a_trade_topic_snapshot_lists_the_last_trades_then_every_trade_follows() {
    let server = common::server();
    let p = server.publisher();
    for i in 1..=80u64 {
        p.publish(trade("BTC-USD.trades", 100.0 + i as f64, i as f64))
            .unwrap();
    }
    common::wait_until("sequenced", || {
        server
            .snapshot("BTC-USD.trades")
            .is_some_and(|s| s.seq == 80)
    });
    for msgpack in [false, true] {
        let mut c = if msgpack {
            Client::connect_msgpack(server.local_addr())
        } else {
            Client::connect(server.local_addr())
        };
        c.subscribe(&["BTC-USD.trades"]);
        let snap = c.next_event();
        assert_eq!(snap["event"], "snapshot", "{snap}");
        assert_eq!(snap["seq"], 80);
        assert_eq!(snap["last"], 180.0, "the merged value is there too");
        let trades = snap["trades"].as_array().expect("trades listed");
        assert_eq!(trades.len(), 50, "trades_snapshot's default");
        for (k, t) in trades.iter().enumerate() {
            let seq = 31 + k as u64;
            assert_eq!(t["seq"], seq, "oldest first: {t}");
            assert_eq!(t["last"], 100.0 + seq as f64);
            assert_eq!(t["last_size"], seq as f64);
        }
    }
    // An ordinary topic's snapshot has no trades.
    p.publish(Update::new("BTC-USD").bid(1.0)).unwrap();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["BTC-USD"]);
    assert!(c.next_event().get("trades").is_none());
}

#[test]
fn trades_snapshot_is_a_setting() {
    let server = Server::start(common::config().trades_snapshot(3)).unwrap();
    let p = server.publisher();
    for i in 1..=10u64 {
        p.publish(trade("T.trades", i as f64, 1.0)).unwrap();
    }
    common::wait_until("sequenced", || {
        server.snapshot("T.trades").is_some_and(|s| s.seq == 10)
    });
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["T.trades"]);
    let snap = c.next_event();
    let seqs: Vec<u64> = snap["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [8, 9, 10]);
    assert!(tickcast::Config::from_toml("[limits]\ntrades_snapshot = 0").is_err());
}

#[test]
fn a_subscriber_that_falls_behind_still_gets_every_trade_while_prices_conflate() {
    let server = Server::start(
        common::config()
            .conflate_bytes(4096)
            .max_commands_per_sec(0.0),
    )
    .unwrap();
    let mut c = Client::connect(server.local_addr());
    c.command(json!({"op":"subscribe","topics":["S.trades","S.px"],"max_rate":1.0}));
    assert_eq!(c.next_event()["event"], "subscribed");
    let p = server.publisher();
    const N: u64 = 2000;
    for i in 1..=N {
        p.publish(trade("S.trades", i as f64, 1.0)).unwrap();
        p.publish(Update::new("S.px").bid(i as f64)).unwrap();
    }
    // Read only now: the client was far behind the whole time.
    let (mut trade_seq, mut px_events, mut px_last) = (0, 0, 0);
    while trade_seq < N || px_last < N {
        let ev = c.next_event();
        match ev["topic"].as_str() {
            Some("S.trades") => {
                assert_eq!(ev["seq"], trade_seq + 1, "every trade, in order: {ev}");
                assert!(ev.get("conflated").is_none(), "{ev}");
                trade_seq += 1;
            }
            Some("S.px") => {
                px_events += 1;
                px_last = ev["seq"].as_u64().unwrap();
            }
            _ => panic!("{ev}"),
        }
    }
    assert!(
        px_events < N as usize,
        "prices were merged ({px_events} events for {N} updates)"
    );
}
