//! Issue 13, cluster mode: tickcast nodes sharing topics through real
//! `redis-server` processes started by the tests on free loopback ports.

mod common;

use common::redis::RedisServer;
use common::{wait_until, Client};
use serde_json::Value;
use tickcast::{Server, Update};

/// A node on `redis`, once both its connections to Redis are up.
fn node(redis: &RedisServer) -> Server {
    node_with(common::config().redis(redis.url()))
}

/// A node started from `config` (with its `redis` set), once both its
/// connections to Redis are up.
fn node_with(config: tickcast::Config) -> Server {
    let n = Server::start(config).expect("node starts");
    wait_until("the node's link to Redis is up", || {
        n.metrics_text().contains("tickcast_cluster_up 1")
    });
    n
}

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap()
}

/// Reads until an update (skipping status events), and returns it.
fn next_update(c: &mut Client) -> Value {
    loop {
        let ev = c.next_event();
        if ev["event"] == "update" || ev["event"] == "snapshot" {
            return ev;
        }
        assert_ne!(ev["event"], "error", "{ev}");
    }
}

#[test]
fn an_update_published_on_one_node_reaches_every_node_with_the_same_seq_and_epoch() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut on_a = Client::connect(a.local_addr());
    let mut on_b = Client::connect(b.local_addr());
    on_a.subscribe(&["T.1"]);
    on_b.subscribe(&["T.1"]);
    let p = a.publisher();
    for i in 1..=100u64 {
        p.publish(Update::new("T.1").bid(i as f64)).unwrap();
    }
    let mut epochs = Vec::new();
    for c in [&mut on_a, &mut on_b] {
        for i in 1..=100u64 {
            let ev = next_update(c);
            assert_eq!(ev["event"], "update", "{ev}");
            assert_eq!(seq(&ev), i, "{ev}");
            assert_eq!(ev["bid"], i as f64);
            if i == 1 {
                epochs.push(ev["epoch"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(epochs[0], epochs[1], "one numbering for the cluster");
    wait_until("both nodes hold seq 100", || {
        [&a, &b]
            .iter()
            .all(|n| n.snapshot("T.1").is_some_and(|s| s.seq == 100))
    });
    // A subscriber that comes later, on either node, gets the cluster's value.
    let mut late = Client::connect(b.local_addr());
    late.subscribe(&["T.1"]);
    let snap = next_update(&mut late);
    assert_eq!(
        (snap["event"].as_str(), seq(&snap)),
        (Some("snapshot"), 100)
    );
    assert_eq!(snap["epoch"].as_str().unwrap(), epochs[0]);
}

#[test]
fn a_subscriber_whose_node_dies_resumes_on_another_with_exactly_what_it_missed() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut on_a = Client::connect(a.local_addr());
    on_a.subscribe(&["R.1"]);
    let p = b.publisher();
    for i in 1..=50u64 {
        p.publish(Update::new("R.1").bid(i as f64)).unwrap();
    }
    let mut epoch = String::new();
    for i in 1..=50u64 {
        let ev = next_update(&mut on_a);
        assert_eq!(seq(&ev), i);
        if i == 1 {
            epoch = ev["epoch"].as_str().unwrap().to_string();
        }
    }
    // Node A goes away (with its subscriber); the feed goes on.
    drop(on_a);
    a.shutdown();
    let mut watcher = Client::connect(b.local_addr());
    watcher.subscribe(&["R.1"]);
    for i in 51..=80u64 {
        p.publish(Update::new("R.1").bid(i as f64).ask(i as f64 + 1.0))
            .unwrap();
    }
    while seq(&next_update(&mut watcher)) < 80 {}
    // A node that never followed the topic serves the resume from Redis.
    let c = node(&redis);
    let mut back = Client::connect(c.local_addr());
    back.send(serde_json::json!({"op":"subscribe","id":1,"topics":["R.1"],
        "since":{"R.1":{"seq":50,"epoch":epoch}}}));
    let ack = back.next_event();
    assert_eq!(ack["event"], "subscribed", "{ack}");
    assert_eq!(ack["recovered"], serde_json::json!(["R.1"]), "{ack}");
    for i in 51..=80u64 {
        let ev = next_update(&mut back);
        assert_eq!(
            (ev["event"].as_str(), seq(&ev)),
            (Some("update"), i),
            "{ev}"
        );
        assert_eq!(ev["ask"], i as f64 + 1.0);
    }
    // And it goes on live.
    p.publish(Update::new("R.1").bid(81.0)).unwrap();
    assert_eq!(seq(&next_update(&mut back)), 81);
}

/// Redis keeps a topic's history in blocks, one per run of updates that
/// reached it together (docs/CLUSTER.md). However the runs fall, a node
/// that never followed the topic replays exactly the last `history_len`,
/// and no more.
#[test]
fn a_history_kept_in_blocks_replays_exactly_the_last_history_len_on_another_node() {
    const LEN: usize = 10;
    let redis = RedisServer::start();
    let cfg = || common::config().redis(redis.url()).history(LEN, 1 << 20);
    let a = node_with(cfg());
    let p = a.publisher();
    // Runs of every length from 1 to 40 (long ones are cut into blocks).
    let mut n = 0u64;
    for run in 1..=40u64 {
        let batch = (n + 1..=n + run).map(|i| Update::new("H.1").bid(i as f64));
        p.publish_batch(batch).unwrap();
        n += run;
        wait_until("numbered", || redis_seq(&redis, "H.1") == n);
    }
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = value_key(&mut con, "H.1").replacen(":v:", ":h:", 1);
    let elements: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    // Two elements a run: its header line (`R topic epoch last count wall
    // fields bytes`), then its binary records.
    let runs: Vec<&[Vec<u8>]> = elements.chunks(2).collect();
    assert!(
        runs.len() >= LEN && runs.len() <= LEN + LEN / 4 + 8 && elements.len() % 2 == 0,
        "{} runs ({} elements) kept for a history of {LEN}",
        runs.len(),
        elements.len()
    );
    // At most 32 updates a run (`numbering::BLOCK`).
    let counts: Vec<u64> = runs
        .iter()
        .map(|run| {
            let header = std::str::from_utf8(&run[0]).unwrap();
            let words: Vec<&str> = header.split(' ').collect();
            assert_eq!(words[7].parse::<usize>().unwrap(), run[1].len(), "{header}");
            words[4].parse().unwrap()
        })
        .collect();
    assert!(counts.iter().all(|&n| (1..=32).contains(&n)), "{counts:?}");
    assert!(counts.contains(&32), "{counts:?}");

    let epoch: String = redis::cmd("HGET")
        .arg(value_key(&mut con, "H.1"))
        .arg("epoch")
        .query(&mut con)
        .unwrap();
    for (since, recovered) in [(n - LEN as u64, true), (n - LEN as u64 - 1, false)] {
        // A fresh node each time: it loads the topic from Redis.
        let c = node_with(cfg());
        let mut back = Client::connect(c.local_addr());
        back.send(serde_json::json!({"op":"subscribe","id":1,"topics":["H.1"],
            "since":{"H.1":{"seq":since,"epoch":epoch}}}));
        let ack = back.next_event();
        assert_eq!(ack["event"], "subscribed", "{ack}");
        if !recovered {
            // (Not recovered: not listed.)
            assert!(ack.get("recovered").is_none(), "since {since}: {ack}");
            let snap = next_update(&mut back);
            assert_eq!((snap["event"].as_str(), seq(&snap)), (Some("snapshot"), n));
            continue;
        }
        assert_eq!(ack["recovered"], serde_json::json!(["H.1"]), "{ack}");
        for i in since + 1..=n {
            let ev = next_update(&mut back);
            assert_eq!(
                (ev["event"].as_str(), seq(&ev)),
                (Some("update"), i),
                "{ev}"
            );
            assert_eq!(ev["bid"], i as f64);
        }
    }
}

#[test]
fn patterns_follow_topics_across_nodes_including_new_ones() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let p = a.publisher();
    p.publish(Update::new("FX.EURUSD").bid(1.1)).unwrap();
    p.publish(Update::new("FX.USDJPY").bid(150.0)).unwrap();
    p.publish(Update::new("EQ.AAPL").bid(200.0)).unwrap();
    // Nobody on A subscribes: A still sent them to Redis.
    wait_until("in Redis", || redis_seq(&redis, "EQ.AAPL") == 1);
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["FX.*"]);
    let mut snaps = Vec::new();
    while snaps.len() < 2 {
        let ev = next_update(&mut on_b);
        assert_eq!(ev["event"], "snapshot", "{ev}");
        snaps.push(ev["topic"].as_str().unwrap().to_string());
    }
    snaps.sort();
    assert_eq!(snaps, ["FX.EURUSD", "FX.USDJPY"]);
    p.publish(Update::new("FX.GBPUSD").bid(1.3)).unwrap();
    p.publish(Update::new("EQ.MSFT").bid(400.0)).unwrap();
    p.publish(Update::new("FX.EURUSD").bid(1.2)).unwrap();
    // Two topics: each in order, the two in either (order is per topic).
    let mut got: Vec<(String, u64)> = (0..2)
        .map(|_| {
            let ev = next_update(&mut on_b);
            (ev["topic"].as_str().unwrap().to_string(), seq(&ev))
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("FX.EURUSD".to_string(), 2), ("FX.GBPUSD".to_string(), 1)]
    );
    assert!(
        b.snapshot("EQ.MSFT").is_none(),
        "B follows only what its clients want"
    );
}

/// What a subscriber saw of one topic, checked as it goes: every update
/// follows the one before it (`seq` + 1, same epoch) unless a snapshot, a
/// clear or a new epoch came first. Never a silent gap.
#[derive(Default, Debug)]
struct Continuity {
    seq: u64,
    epoch: String,
    snapshots: usize,
    cleared: usize,
    stale_seen: bool,
    live_seen: bool,
    updates: usize,
}

impl Continuity {
    fn take(&mut self, ev: &Value) {
        if std::env::var_os("TRACE").is_some() {
            eprintln!("< {ev}");
        }
        match ev["event"].as_str().unwrap() {
            "snapshot" => {
                self.snapshots += 1;
                self.seq = seq(ev);
                self.epoch = ev["epoch"].as_str().unwrap().to_string();
            }
            "update" => {
                self.updates += 1;
                if let Some(e) = ev["epoch"].as_str() {
                    assert_eq!(seq(ev), 1, "an epoch is named by seq 1: {ev}");
                    self.epoch = e.to_string();
                    self.seq = 0;
                }
                assert_eq!(seq(ev), self.seq + 1, "a silent gap: {ev}");
                self.seq += 1;
            }
            "cleared" => {
                self.cleared += 1;
                self.seq = 0;
            }
            "status" => {
                if ev["state"] == "stale" {
                    self.stale_seen = true;
                } else {
                    self.live_seen = true;
                }
            }
            other => panic!("unexpected {other}: {ev}"),
        }
    }
}

fn healthz(server: &Server) -> String {
    common::http_raw(server.local_addr(), b"GET /healthz HTTP/1.1\r\n\r\n")
}

#[test]
fn redis_restarted_mid_stream_loses_nothing_and_subscribers_never_see_a_silent_gap() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let mut sub = Client::connect(b.local_addr());
    sub.subscribe(&["S.1"]);
    let p = a.publisher();
    let mut seen = Continuity::default();
    for i in 1..=50u64 {
        p.publish(Update::new("S.1").bid(i as f64)).unwrap();
    }
    while seen.seq < 50 {
        seen.take(&sub.next_event());
    }
    let epoch = seen.epoch.clone();
    redis.kill();
    wait_until("/healthz says degraded", || {
        healthz(&b).contains("degraded")
    });
    // Published while Redis is down: kept, and sent once it is back.
    for i in 51..=60u64 {
        p.publish(Update::new("S.1").bid(i as f64)).unwrap();
    }
    while !seen.stale_seen {
        seen.take(&sub.next_event());
    }
    redis.restart();
    for i in 61..=100u64 {
        p.publish(Update::new("S.1").bid(i as f64)).unwrap();
    }
    while seen.seq < 100 {
        seen.take(&sub.next_event());
    }
    assert_eq!(seen.epoch, epoch, "Redis kept its data: same numbering");
    // Live again once the link is back (the status may follow the last
    // update read, when the value came back as a snapshot).
    while !seen.live_seen {
        seen.take(&sub.next_event());
    }
    wait_until("/healthz says ok", || healthz(&b).ends_with("ok\n"));
    assert_eq!(b.snapshot("S.1").unwrap().prices.bid, Some(100.0));
}

#[test]
fn redis_restarted_empty_starts_a_new_epoch_that_subscribers_are_told_of() {
    let mut redis = RedisServer::start_with(&["--appendonly", "no"]);
    let (a, b) = (node(&redis), node(&redis));
    let mut sub = Client::connect(b.local_addr());
    sub.subscribe(&["E.1"]);
    let p = a.publisher();
    let mut seen = Continuity::default();
    for i in 1..=20u64 {
        p.publish(Update::new("E.1").bid(i as f64)).unwrap();
    }
    while seen.seq < 20 {
        seen.take(&sub.next_event());
    }
    let old = seen.epoch.clone();
    redis.restart_empty();
    for i in 1..=30u64 {
        p.publish(Update::new("E.1").ask(i as f64)).unwrap();
    }
    // Whatever the order the two sides reconnect in, the subscriber learns
    // the new numbering from a clear, a snapshot or a seq-1 update that
    // names it; `Continuity` fails on anything else.
    while !(seen.epoch != old
        && seen.seq >= 1
        && b.snapshot("E.1")
            .is_some_and(|s| s.prices.ask == Some(30.0)))
    {
        seen.take(&sub.next_event());
    }
    let snap = b.snapshot("E.1").unwrap();
    assert_ne!(snap.epoch.to_string(), old);
    assert_eq!(snap.seq, 30, "30 updates in the new numbering");
}

/// The `seq` Redis gave a topic last.
fn redis_seq(redis: &RedisServer, topic: &str) -> u64 {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("HGET")
        .arg(value_key(&mut con, topic))
        .arg("seq")
        .query::<Option<u64>>(&mut con)
        .unwrap()
        .unwrap_or(0)
}

#[test]
fn three_daemons_one_killed_while_publishing_the_others_carry_on_and_lose_nothing_redis_took() {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = |demo: bool| {
        let mut a = vec!["--listen", "127.0.0.1:0", "--shards", "2", "--redis", &url];
        if demo {
            a.extend(["--demo", "--demo-rate", "2000"]);
        }
        a
    };
    let mut a = common::Daemon::start(&args(true));
    let b = common::Daemon::start(&args(false));
    let c = common::Daemon::start(&args(false));
    let topic = tickcast::daemon::demo::topics().next().unwrap();
    let mut on_b = Client::connect(b.addr);
    let mut on_c = Client::connect(c.addr);
    on_b.subscribe(&[topic]);
    on_c.subscribe(&[topic]);
    let (mut seen_b, mut seen_c) = (Continuity::default(), Continuity::default());
    while seen_b.updates < 20 {
        seen_b.take(&next_update(&mut on_b));
    }
    // SIGKILL: no close, no flush; whatever it had not sent to Redis is gone
    // with it, but what Redis numbered must reach every other node.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let last = redis_seq(&redis, topic);
    assert!(last >= 20);
    while seen_b.seq < last {
        seen_b.take(&next_update(&mut on_b));
    }
    while seen_c.seq < last {
        seen_c.take(&next_update(&mut on_c));
    }
    assert_eq!((seen_b.seq, seen_c.seq), (last, last));
    assert_eq!(seen_b.epoch, seen_c.epoch);
    assert!(
        on_b.try_next_event(std::time::Duration::from_millis(200))
            .is_none(),
        "nothing after what Redis numbered"
    );
    // B and C go on: a feed on another node reaches both, numbered on.
    let d = node(&redis);
    d.publisher().publish(Update::new(topic).last(1.0)).unwrap();
    for (c, seen) in [(&mut on_b, &mut seen_b), (&mut on_c, &mut seen_c)] {
        seen.take(&next_update(c));
        assert_eq!(seen.seq, last + 1);
    }
}

#[test]
fn a_three_master_redis_cluster_spreads_the_topics_and_every_node_agrees() {
    let cluster = common::redis::RedisCluster::start();
    let cfg = || common::config().redis(cluster.url());
    let a = Server::start(cfg()).unwrap();
    let b = Server::start(cfg()).unwrap();
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["C.*"]);
    let mut on_a = Client::connect(a.local_addr());
    on_a.subscribe(&["C.7"]);
    let p = a.publisher();
    const TOPICS: u64 = 30;
    for round in 1..=5u64 {
        for t in 0..TOPICS {
            p.publish(Update::new(format!("C.{t}")).bid((round * 100 + t) as f64))
                .unwrap();
        }
    }
    let mut seen: std::collections::HashMap<String, Continuity> = Default::default();
    let mut done = 0;
    while done < TOPICS {
        let ev = next_update(&mut on_b);
        let c = seen
            .entry(ev["topic"].as_str().unwrap().to_string())
            .or_default();
        c.take(&ev);
        if c.seq == 5 {
            done += 1;
        }
    }
    let mut a_seen = Continuity::default();
    while a_seen.seq < 5 {
        a_seen.take(&next_update(&mut on_a));
    }
    assert_eq!(
        a_seen.epoch, seen["C.7"].epoch,
        "one numbering on both nodes"
    );
    // Each topic's keys live in one slot; 30 topics land on every master.
    let keys = cluster.keys_per_node();
    assert!(keys.iter().all(|k| *k > 0), "keys per master: {keys:?}");
    assert_eq!(b.snapshot("C.29").unwrap().prices.bid, Some(529.0));
}

#[test]
fn with_redis_down_publishers_queue_then_get_a_clear_error_and_nothing_queued_is_lost() {
    let mut redis = RedisServer::start();
    let a = Server::start(common::config().redis(redis.url()).ingest_capacity(16)).unwrap();
    let b = node(&redis);
    let mut sub = Client::connect(b.local_addr());
    sub.subscribe(&["Q.1"]);
    let p = a.publisher();
    p.publish(Update::new("Q.1").bid(1.0)).unwrap();
    let mut seen = Continuity::default();
    while seen.seq < 1 {
        seen.take(&sub.next_event());
    }
    redis.kill();
    // Queued while there is room (sent once Redis is back), then refused.
    let mut queued = 1u64;
    let refused = loop {
        match p.publish(Update::new("Q.1").bid(queued as f64 + 1.0)) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued < 10_000, "never refused");
    };
    assert!(matches!(refused, tickcast::Error::Unavailable), "{refused}");
    assert!(refused.to_string().contains("Redis cannot be reached"));
    assert!(matches!(
        p.try_publish(Update::new("Q.1").bid(0.0)),
        Err(tickcast::Error::Unavailable)
    ));
    redis.restart();
    while seen.seq < queued {
        seen.take(&sub.next_event());
    }
    assert_eq!(seen.seq, queued, "every queued update arrived, in order");
    assert_eq!(b.snapshot("Q.1").unwrap().prices.bid, Some(queued as f64));
    wait_until("publishing works again", || {
        p.try_publish(Update::new("Q.1").bid(-1.0)).is_ok()
    });
    // The link's metrics: batches, reconnects, lag, all on the page.
    let text = a.metrics_text();
    for name in [
        "tickcast_cluster_up 1",
        "tickcast_cluster_round_trips_total",
        "tickcast_cluster_reconnects_total",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let round_trips = common::metric(&a, "tickcast_cluster_round_trips_total");
    let batched = common::metric(&a, "tickcast_cluster_batched_total");
    assert!(
        batched > round_trips,
        "pipelined: {batched} in {round_trips} round trips"
    );
    assert!(common::metric(&a, "tickcast_cluster_reconnects_total") >= 1.0);
    assert!(common::metric(&b, "tickcast_cluster_lag_seconds_count") >= 1.0);
}

/// The key of a topic's value (docs/CLUSTER.md: `tc:{P}:v:T`, P its
/// partition), found by pattern so the test does not repeat the hash.
fn value_key(con: &mut redis::Connection, topic: &str) -> String {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("tc:{{*}}:v:{topic}"))
        .query(con)
        .unwrap();
    assert!(keys.len() <= 1, "one value key per topic: {keys:?}");
    keys.into_iter().next().unwrap_or_default()
}

/// The partition channels (`tc:{P}`) some node subscribes to, by Redis.
fn followed_partitions(redis: &RedisServer) -> Vec<String> {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("tc:*")
        .query(&mut con)
        .unwrap()
}

#[test]
fn a_node_follows_a_topic_only_while_its_clients_want_it() {
    let redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let p = a.publisher();
    p.publish(Update::new("U.1").bid(1.0)).unwrap();
    assert_eq!(
        followed_partitions(&redis),
        Vec::<String>::new(),
        "nobody wants it yet"
    );
    let mut c = Client::connect(b.local_addr());
    c.subscribe(&["U.1"]);
    assert_eq!(next_update(&mut c)["event"], "snapshot");
    let followed = followed_partitions(&redis);
    assert_eq!(
        followed.len(),
        1,
        "B follows U.1's partition only: {followed:?}"
    );
    let key = value_key(
        &mut redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap(),
        "U.1",
    );
    assert!(
        key.starts_with(&format!("{}:v:", followed[0])),
        "{key} is in {followed:?}"
    );
    c.command(serde_json::json!({"op":"unsubscribe","topics":["U.1"]}));
    wait_until(
        "B drops it (a few seconds after its last subscriber)",
        || followed_partitions(&redis).is_empty(),
    );
    // Published while B did not follow it; a new subscriber on B gets it.
    p.publish(Update::new("U.1").bid(2.0)).unwrap();
    wait_until("in Redis", || redis_seq(&redis, "U.1") == 2);
    let mut again = Client::connect(b.local_addr());
    again.subscribe(&["U.1"]);
    let snap = next_update(&mut again);
    assert_eq!(
        (snap["event"].as_str(), seq(&snap)),
        (Some("snapshot"), 2),
        "{snap}"
    );
    assert_eq!(snap["bid"], 2.0);
}

#[test]
fn a_network_publisher_on_one_node_reaches_subscribers_on_another() {
    const PUB: &str = "publisher-token-1";
    let redis = RedisServer::start();
    let a = Server::start(
        common::config()
            .redis(redis.url())
            .publisher_tokens(vec![PUB.into()]),
    )
    .unwrap();
    let b = node(&redis);
    let mut sub = Client::connect(b.local_addr());
    sub.subscribe(&["N.*"]);
    let url = format!("ws://{}/publish", a.local_addr());
    let remote = tickcast::RemotePublisher::connect(tickcast::RemoteConfig::new(url, PUB)).unwrap();
    for i in 1..=200u64 {
        remote
            .publish(Update::new(format!("N.{}", i % 2)).bid(i as f64))
            .unwrap();
    }
    remote.flush(std::time::Duration::from_secs(10)).unwrap();
    let mut seen: std::collections::HashMap<String, Continuity> = Default::default();
    // Until each topic is at seq 100, checked event by event: in order per
    // topic, as the one publisher connection sent them, with no silent
    // gap. (Counted by `seq`, not by events: a node that sees a gap loads
    // the topic and its subscribers get a snapshot for what it covers.)
    let at = |seen: &std::collections::HashMap<String, Continuity>, t: &str| {
        seen.get(t).map_or(0, |c| c.seq)
    };
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while at(&seen, "N.0") < 100 || at(&seen, "N.1") < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "node B's subscriber stopped short: {seen:?}"
        );
        let Some(ev) = sub.try_next_event(std::time::Duration::from_millis(200)) else {
            continue;
        };
        assert_ne!(ev["event"], "error", "{ev}");
        if ev["event"] == "update" || ev["event"] == "snapshot" {
            seen.entry(ev["topic"].as_str().unwrap().into())
                .or_default()
                .take(&ev);
        }
    }
    assert_eq!((at(&seen, "N.0"), at(&seen, "N.1")), (100, 100));
    assert_eq!(b.snapshot("N.0").unwrap().prices.bid, Some(200.0));
    assert_eq!(remote.lost(), 0);
}

#[test]
fn a_trade_topic_subscribed_on_another_node_lists_its_last_trades_from_redis() {
    let redis = RedisServer::start();
    let cfg = || {
        common::config()
            .redis(redis.url())
            .history(10, 1 << 20)
            .trades_snapshot(30)
    };
    let (a, b) = (Server::start(cfg()).unwrap(), Server::start(cfg()).unwrap());
    let mut watcher = Client::connect(a.local_addr());
    watcher.subscribe(&["X.trades"]);
    let p = a.publisher();
    for i in 1..=40u64 {
        p.publish(Update::new("X.trades").last(i as f64).last_size(1.0))
            .unwrap();
    }
    while seq(&next_update(&mut watcher)) < 40 {}
    // Node B has never followed it: its snapshot comes from Redis, which
    // kept 30 trades although history_len is 10.
    let mut c = Client::connect(b.local_addr());
    c.subscribe(&["X.trades"]);
    let snap = next_update(&mut c);
    assert_eq!((snap["event"].as_str(), seq(&snap)), (Some("snapshot"), 40));
    let seqs: Vec<u64> = snap["trades"]
        .as_array()
        .expect("trades listed")
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (11..=40).collect::<Vec<u64>>());
}

#[test]
fn extra_fields_cross_nodes_by_name_and_a_node_that_loads_a_topic_has_them() {
    let redis = RedisServer::start();
    let cfg = || {
        common::config()
            .redis(redis.url())
            .extra_fields(["open_interest", "iv"])
    };
    let (a, b) = (Server::start(cfg()).unwrap(), Server::start(cfg()).unwrap());
    for n in [&a, &b] {
        wait_until("the node's link to Redis is up", || {
            n.metrics_text().contains("tickcast_cluster_up 1")
        });
    }
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["OPT.1"]);
    let iv = a.field("iv").unwrap();
    let oi = a.field("open_interest").unwrap();
    let p = a.publisher();
    p.publish(Update::new("OPT.1").last(5.0).field(iv, 0.42))
        .unwrap();
    p.publish(Update::new("OPT.1").field(oi, 900.0)).unwrap();
    let first = next_update(&mut on_b);
    assert_eq!(
        (first["last"].as_f64(), first["iv"].as_f64()),
        (Some(5.0), Some(0.42)),
        "{first}"
    );
    assert_eq!(next_update(&mut on_b)["open_interest"], 900.0);
    // Node C never followed it: its snapshot is loaded from Redis's value.
    let c_node = Server::start(cfg()).unwrap();
    wait_until("node C's link to Redis is up", || {
        c_node.metrics_text().contains("tickcast_cluster_up 1")
    });
    let mut on_c = Client::connect(c_node.local_addr());
    on_c.subscribe(&["OPT.1"]);
    let snap = next_update(&mut on_c);
    assert_eq!(snap["event"], "snapshot", "{snap}");
    assert_eq!(
        (
            snap["last"].as_f64(),
            snap["iv"].as_f64(),
            snap["open_interest"].as_f64()
        ),
        (Some(5.0), Some(0.42), Some(900.0)),
        "{snap}"
    );
}

/// Issue 28: a node that loads a topic from Redis after its publisher left
/// gives new subscribers `"stale": true`, as the node that saw it leave does.
#[test]
fn a_topic_whose_publisher_left_is_stale_on_a_node_that_loads_it_later() {
    const PUB: &str = "publisher-token-1";
    let redis = RedisServer::start();
    let a = node_with(
        common::config()
            .redis(redis.url())
            .publisher_tokens(vec![PUB.into()]),
    );
    // A client on A makes A follow both topics, so it hears the marks.
    let mut on_a = Client::connect(a.local_addr());
    on_a.subscribe(&["GONE", "KEPT"]);
    let url = format!("ws://{}/publish", a.local_addr());
    let remote = tickcast::RemotePublisher::connect(tickcast::RemoteConfig::new(url, PUB)).unwrap();
    remote.publish(Update::new("GONE").bid(3.0)).unwrap();
    remote.publish(Update::new("KEPT").bid(4.0)).unwrap();
    remote.flush(std::time::Duration::from_secs(10)).unwrap();
    remote.close();
    let mut stale = std::collections::HashSet::new();
    while stale.len() < 2 {
        let ev = on_a.next_event();
        if ev["event"] == "status" && ev["state"] == "stale" {
            stale.insert(ev["topic"].as_str().unwrap().to_string());
        }
    }
    // Back to live for one of them: a later update clears the mark in Redis.
    a.publisher().publish(Update::new("KEPT").bid(4.5)).unwrap();
    loop {
        let ev = next_update(&mut on_a);
        if ev["topic"] == "KEPT" && ev["bid"].as_f64() == Some(4.5) {
            break;
        }
    }
    // A node that starts now loads both from Redis.
    let b = node(&redis);
    let mut sub = Client::connect(b.local_addr());
    sub.subscribe(&["GONE", "KEPT"]);
    let mut snaps = std::collections::HashMap::new();
    while snaps.len() < 2 {
        let ev = next_update(&mut sub);
        assert_eq!(ev["event"], "snapshot", "{ev}");
        snaps.insert(ev["topic"].as_str().unwrap().to_string(), ev);
    }
    assert_eq!(snaps["GONE"]["stale"], true, "{}", snaps["GONE"]);
    assert!(snaps["KEPT"].get("stale").is_none(), "{}", snaps["KEPT"]);
}
