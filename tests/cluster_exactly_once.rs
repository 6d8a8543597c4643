//! Cluster mode numbers every update exactly once, even when the writer's
//! connection to Redis is killed (`CLIENT KILL`) again and again in the
//! middle of its pipelines: a batch sent again is recognized by Redis and
//! its partitions already numbered are skipped (docs/CLUSTER.md). Prices
//! and an order book's changes alike.

mod common;

use common::book_copy::{random_change, Copy};
use common::redis::RedisServer;
use common::reply_cut::ReplyCut;
use common::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::{Server, Update};

const TOPICS: u64 = 8;
const BOOK: &str = "X.book";
const HISTORY: usize = 4096;

fn con(redis: &RedisServer) -> ::redis::Connection {
    ::redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Kills the connection of every tickcast writer (named
/// `tickcast-writer-…` in `CLIENT LIST`); returns how many it killed.
fn kill_writers(con: &mut ::redis::Connection) -> usize {
    let list: String = ::redis::cmd("CLIENT").arg("LIST").query(con).unwrap();
    let ids: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(" name=tickcast-writer-"))
        .filter_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("id=")))
        .collect();
    for id in &ids {
        let _: ::redis::RedisResult<i64> = ::redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*id)
            .query(con);
    }
    ids.len()
}

/// A topic as Redis holds it: its `seq`, epoch, and the `last` values of
/// its history entries with their `seq`s (docs/CLUSTER.md: `tc:{P}:v:T`,
/// `tc:{P}:h:T`).
fn stored(con: &mut ::redis::Connection, topic: &str) -> (u64, String, Vec<(u64, u64)>) {
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("tc:{{*}}:v:{topic}"))
        .query(con)
        .unwrap();
    assert_eq!(keys.len(), 1, "{topic}: {keys:?}");
    let value: HashMap<String, String> = ::redis::cmd("HGETALL").arg(&keys[0]).query(con).unwrap();
    let history: Vec<Vec<u8>> = ::redis::cmd("LRANGE")
        .arg(keys[0].replacen(":v:", ":h:", 1))
        .arg(0)
        .arg(-1)
        .query(con)
        .unwrap();
    // A run is two elements: its header line, `R topic epoch last count
    // wall fields bytes` (here `last`, the only field published), then its
    // updates' binary records (docs/CLUSTER.md): the time as a varint, a
    // mask byte (1: the one field is carried), the value as 8 bytes.
    assert_eq!(history.len() % 2, 0, "header and records");
    let mut entries = Vec::new();
    for run in history.chunks(2) {
        let header = std::str::from_utf8(&run[0]).unwrap();
        let head: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            (head[0], head[1], head[2]),
            ("R", topic, value["epoch"].as_str()),
            "{header}"
        );
        assert_eq!(head.get(6), Some(&"last"), "{header}");
        let (last, count): (u64, u64) = (head[3].parse().unwrap(), head[4].parse().unwrap());
        let mut records = &run[1][..];
        assert_eq!(records.len(), head[7].parse::<usize>().unwrap(), "{header}");
        for i in 0..count {
            let varint = records.iter().position(|&b| b & 0x80 == 0).unwrap() + 1;
            assert_eq!(records[varint], 1, "{header}: the mask");
            let value = f64::from_le_bytes(records[varint + 1..varint + 9].try_into().unwrap());
            records = &records[varint + 9..];
            entries.push((last + 1 - count + i, value as u64));
        }
        assert!(records.is_empty(), "{header}: bytes past its count");
    }
    (
        value["seq"].parse().unwrap(),
        value["epoch"].clone(),
        entries,
    )
}

#[test]
fn a_writer_whose_connection_is_killed_again_and_again_numbers_every_update_exactly_once() {
    let redis = RedisServer::start_with(&[]);
    // Node A (the publisher's) reaches Redis through a relay that loses
    // the replies to a batch Redis has numbered, when asked.
    let cut = ReplyCut::start(redis.port);
    let cfg = |url: String| common::config().redis(url).history(HISTORY, 1 << 30);
    let a = Server::start(cfg(cut.url())).unwrap();
    let b = Server::start(cfg(redis.url())).unwrap();
    // Both nodes follow every topic, so both apply what Redis numbers.
    let mut on_a = Client::connect(a.local_addr());
    let mut on_b = Client::connect(b.local_addr());
    on_a.subscribe(&["X.*"]);
    on_b.subscribe(&["X.*"]);

    // The feed: `last` is the update's index, unique across topics. It
    // keeps at most `AHEAD` operations beyond what Redis has acknowledged
    // (`acked`, kept by the fault loop below), so that batches stay small
    // and a fault costs a short resend on a slow box too (a debug build
    // sharing two cores fell behind into full 32,768-operation batches of
    // over a second each).
    const AHEAD: u64 = 4_000;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let feed = {
        let (p, stop, acked) = (a.publisher(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut sent: HashMap<String, Vec<u64>> = HashMap::new();
            // And an order book, changed every 8th update.
            let (mut book, mut changes) = (Copy::default(), 0u64);
            let mut rng = SmallRng::seed_from_u64(5);
            // Refused (not queued) while the writer is down and its queue
            // full: tried again, as a feed handler would.
            let publish = |u: Update| {
                while let Err(e) = p.publish(u.clone()) {
                    assert!(matches!(e, tickcast::Error::Unavailable), "{e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
            };
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 2_000_000 {
                let topic = format!("X.{}", i % TOPICS);
                publish(Update::new(&topic).last(i as f64));
                sent.entry(topic).or_default().push(i);
                if i % 8 == 0 {
                    publish(random_change(&mut rng, BOOK, &mut book));
                    changes += 1;
                }
                i += 1;
                while i + changes > acked.load(Ordering::Relaxed) + AHEAD
                    && !stop.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            (sent, book, changes)
        })
    };

    // Kill the writer's connection at least 20 times (wherever the kill
    // lands: before a pipeline, in it, after it), and lose the replies to
    // a batch Redis has numbered at least 5 times: such a batch is sent
    // again and Redis must recognize it. Each fault waits until the last
    // one is made and Redis has acknowledged a batch since (faults faster
    // than the writer can resend would stop it for good: CI's box, session
    // 18, got 96 kills in and not one batch through).
    let mut killer = con(&redis);
    let deadline = Instant::now() + Duration::from_secs(30);
    let skipped = |a: &Server| metric(a, "tickcast_cluster_resent_skipped_total");
    let acknowledged = |a: &Server| metric(a, "tickcast_cluster_batched_total");
    let (mut kills, mut faults, mut acknowledged_at_fault) = (0, 0u64, -1.0);
    while (kills < 20 || cut.cuts() < 5) && Instant::now() < deadline {
        // One read of /metrics a turn serves the feed and the check.
        let now = acknowledged(&a);
        acked.store(now as u64, Ordering::Relaxed);
        if cut.armed() || now <= acknowledged_at_fault {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        acknowledged_at_fault = now;
        if faults % 2 == 0 {
            kills += kill_writers(&mut killer);
        } else {
            cut.arm();
        }
        faults += 1;
        std::thread::sleep(Duration::from_millis(5 + (faults * 7) % 20));
    }
    cut.disarm();

    stop.store(true, Ordering::Relaxed);
    let (sent, book, changes) = feed.join().unwrap();
    let total = sent.values().map(Vec::len).sum::<usize>() + changes as usize;
    wait_until("every update reached Redis", || {
        metric(&a, "tickcast_cluster_batched_total") as usize == total
    });
    // A kill lands on a connection in use or on one just made (then the
    // connecting fails and the writer tries again): most are reconnects.
    let reconnects = metric(&a, "tickcast_cluster_reconnects_total");
    eprintln!(
        "{kills} kills, {} replies lost, {reconnects} reconnects, {} partition calls skipped, \
         {total} updates",
        cut.cuts(),
        skipped(&a)
    );
    assert!(
        reconnects >= (kills / 2) as f64,
        "{reconnects} reconnects for {kills} kills"
    );

    let mut con = con(&redis);
    for (topic, values) in &sent {
        let (seq, epoch, entries) = stored(&mut con, topic);
        // No update numbered twice, none missing: `seq` counts them.
        assert_eq!(
            seq,
            values.len() as u64,
            "{topic}: seq against updates published"
        );
        // The history holds the last ones in publishing order, numbered
        // consecutively up to `seq`.
        let tail = &values[values.len().saturating_sub(entries.len())..];
        let first = seq + 1 - entries.len() as u64;
        let expected: Vec<(u64, u64)> = (first..=seq).zip(tail.iter().copied()).collect();
        // (Trimmed to `HISTORY` blocks of one or more once it passes it by a
        // quarter.)
        assert!(
            entries.len() >= values.len().min(HISTORY) && entries.len() <= values.len(),
            "{topic}: {} entries kept of {}",
            entries.len(),
            values.len()
        );
        assert_eq!(
            entries, expected,
            "{topic}: history against what was published"
        );
        // Every node agrees with Redis.
        for (node, server) in [("A", &a), ("B", &b)] {
            wait_until(&format!("{topic} at its last seq on {node}"), || {
                server.snapshot(topic).is_some_and(|s| s.seq == seq)
            });
            let snap = server.snapshot(topic).unwrap();
            assert_eq!(snap.epoch.to_string(), epoch, "{topic} on {node}");
            assert_eq!(snap.prices.last, Some(*values.last().unwrap() as f64));
        }
    }
    // The book: every change numbered once, the same on both nodes, whose
    // books (loaded whole by a new subscriber at the deepest depth) are
    // the feed's.
    for (node, server) in [("A", &a), ("B", &b)] {
        wait_until(&format!("the book at its last seq on {node}"), || {
            server.snapshot(BOOK).is_some_and(|s| s.seq == changes)
        });
        let mut c = Client::connect(server.local_addr());
        c.command(serde_json::json!({"op":"subscribe","topics":[BOOK],"depth":1000}));
        let snap = loop {
            let ev = c.next_event();
            if ev["event"] == "book" {
                break ev;
            }
        };
        assert_eq!(snap["seq"].as_u64(), Some(changes), "{node}");
        let mut copy = Copy::default();
        copy.apply_event(&snap);
        assert_eq!(copy, book, "the book on {node}");
    }
    // Batches whose replies were lost were sent again, and Redis skipped
    // what it had numbered before (each lost reply means at least one
    // partition call numbered; otherwise this test proved nothing about
    // resends).
    assert!(
        kills >= 20 && cut.cuts() >= 5,
        "{kills} kills, {} cuts",
        cut.cuts()
    );
    assert!(
        skipped(&a) >= cut.cuts() as f64,
        "skipped {} after {} lost replies",
        skipped(&a),
        cut.cuts()
    );
    drop((on_a, on_b));
}
