//! Cluster mode: a topic's own `stale_after`, set by a publisher on one
//! node, holds on every node, a node that loads the topic later included,
//! and a clear drops it everywhere (as on a single node).

mod common;

use common::redis::RedisServer;
use common::{metric, wait_until, Client};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tickcast::{Server, Update};

fn node(redis: &RedisServer) -> Server {
    let s = Server::start(common::config().redis(redis.url())).unwrap();
    wait_until("the node's link to Redis is up", || {
        s.metrics_text().contains("tickcast_cluster_up 1")
    });
    s
}

/// The status events `c` gets within `wait`.
fn statuses(c: &mut Client, wait: Duration) -> Vec<Value> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < wait {
        if let Some(ev) = c.try_next_event(Duration::from_millis(50)) {
            if ev["event"] == "status" {
                out.push(ev);
            }
        }
    }
    out
}

#[test]
fn a_topics_own_stale_after_holds_on_every_node_and_a_clear_drops_it() {
    let redis = RedisServer::start();
    // No server-wide stale_after anywhere: only the topic's own.
    let (a, b) = (node(&redis), node(&redis));
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["SA.1", "SA.2"]);
    let p = a.publisher();
    p.set_stale_after("SA.1", Some(Duration::from_millis(300)))
        .unwrap();
    p.publish(Update::new("SA.1").bid(1.0)).unwrap();
    p.publish(Update::new("SA.2").bid(1.0)).unwrap();
    // B, which only hears of SA.1 through Redis, marks it stale once quiet;
    // SA.2 has no limit of its own and stays live.
    let seen = statuses(&mut on_b, Duration::from_millis(1500));
    assert_eq!(
        seen,
        [json!({"event":"status","topic":"SA.1","state":"stale"})]
    );

    // A node that never followed SA.1 loads its limit with its value.
    let c = node(&redis);
    let mut on_c = Client::connect(c.local_addr());
    on_c.subscribe(&["SA.1"]);
    p.publish(Update::new("SA.1").bid(2.0)).unwrap();
    let seen = statuses(&mut on_c, Duration::from_millis(1500));
    assert!(
        seen.contains(&json!({"event":"status","topic":"SA.1","state":"stale"})),
        "C applies SA.1's own stale_after: {seen:?}"
    );

    // A clear drops it everywhere: the next numbering stays live.
    p.clear("SA.1").unwrap();
    p.publish(Update::new("SA.1").bid(3.0)).unwrap();
    wait_until("SA.1 numbered again on C", || {
        c.snapshot("SA.1")
            .is_some_and(|s| s.prices.bid == Some(3.0))
    });
    let seen = statuses(&mut on_c, Duration::from_millis(1000));
    assert!(
        !seen.contains(&json!({"event":"status","topic":"SA.1","state":"stale"})),
        "{seen:?}"
    );
}

/// An extra field may be named like the setting (`stale_after_ms`): the
/// store keeps the setting under a key no field can have, so neither
/// overwrites the other.
#[test]
fn an_extra_field_named_like_the_setting_keeps_its_value_and_the_setting_holds() {
    let redis = RedisServer::start();
    let cfg = || {
        common::config()
            .redis(redis.url())
            .extra_fields(["stale_after_ms"])
    };
    let start = |c: tickcast::Config| {
        let s = Server::start(c).unwrap();
        wait_until("the node's link to Redis is up", || {
            s.metrics_text().contains("tickcast_cluster_up 1")
        });
        s
    };
    let a = start(cfg());
    let field = a.field("stale_after_ms").unwrap();
    let p = a.publisher();
    p.set_stale_after("SF.1", Some(Duration::from_millis(300)))
        .unwrap();
    // 5,000: read as the setting, the topic would not go stale in time.
    p.publish(Update::new("SF.1").field(field, 5000.0)).unwrap();
    // Numbered in Redis before B starts (under load, B's subscribe could
    // otherwise come first and see the topic's first update, not a load).
    wait_until("SF.1's setting and update numbered in Redis", || {
        metric(&a, "tickcast_cluster_batched_total") >= 2.0
    });
    // A node that loads it later has both: the field's value in its
    // snapshot, and the topic going stale after 300 ms of quiet.
    let b = start(cfg());
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["SF.1"]);
    let snap = on_b.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["stale_after_ms"].as_f64()),
        (Some("snapshot"), Some(5000.0)),
        "{snap}"
    );
    let seen = statuses(&mut on_b, Duration::from_millis(1200));
    assert!(
        seen.contains(&json!({"event":"status","topic":"SF.1","state":"stale"})),
        "{seen:?}"
    );
}
