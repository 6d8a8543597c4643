//! A client's copy of an order book, as a dashboard keeps one: built from
//! `book` and `book_update` events, every checksum verified on the way.

use super::Client;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::{book_checksum, Side, Update};

/// A client's copy of a book: price (in half units, so keys are exact) → size.
#[derive(Default, Clone, PartialEq, Debug)]
pub struct Copy {
    pub bids: BTreeMap<i64, f64>,
    pub asks: BTreeMap<i64, f64>,
}

/// Levels of one side, best first: (price, size).
pub type Ladder = Vec<(f64, f64)>;

pub fn key(p: f64) -> i64 {
    (p * 2.0).round() as i64
}

impl Copy {
    pub fn set(&mut self, side: Side, price: f64, size: f64) {
        let map = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        if size == 0.0 {
            map.remove(&key(price));
        } else {
            map.insert(key(price), size);
        }
    }

    /// The best `n` levels of each side, best first.
    pub fn top(&self, n: usize) -> (Ladder, Ladder) {
        let pair = |(k, s): (&i64, &f64)| (*k as f64 / 2.0, *s);
        (
            self.bids.iter().rev().take(n).map(pair).collect(),
            self.asks.iter().take(n).map(pair).collect(),
        )
    }

    pub fn apply_event(&mut self, ev: &Value) {
        if ev["event"] == "book" {
            *self = Copy::default();
        }
        for (side, name) in [(Side::Bid, "bids"), (Side::Ask, "asks")] {
            for l in ev[name].as_array().unwrap_or_else(|| panic!("{ev}")) {
                self.set(side, l[0].as_f64().unwrap(), l[1].as_f64().unwrap());
            }
        }
    }

    pub fn checksum(&self) -> u32 {
        let (b, a) = self.top(10);
        book_checksum(&b, &a)
    }
}

/// Reads a subscriber's book events until it holds `target`'s seq,
/// checking order, depth and every checksum on the way.
pub fn follow(mut c: Client, topic: &str, depth: usize, target: Arc<AtomicU64>) -> (Copy, u64) {
    follow_counting(&mut c, topic, depth, target, &AtomicU64::new(0))
}

/// `follow`, counting in `merged` the events that stood for several changes.
pub fn follow_counting(
    c: &mut Client,
    topic: &str,
    depth: usize,
    target: Arc<AtomicU64>,
    merged: &AtomicU64,
) -> (Copy, u64) {
    let mut copy = Copy::default();
    let mut seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = target.load(Ordering::SeqCst);
        if t > 0 && seq == t {
            return (copy, seq);
        }
        assert!(
            Instant::now() < deadline,
            "depth {depth}: stuck at seq {seq}, target {t}"
        );
        let Some(ev) = c.try_next_event(Duration::from_millis(100)) else {
            continue;
        };
        assert_eq!(ev["topic"], topic, "{ev}");
        // Stale and live (a cluster node's link to Redis going down and
        // up) change no level.
        if ev["event"] == "status" {
            continue;
        }
        let s = ev["seq"].as_u64().unwrap();
        match ev["event"].as_str().unwrap() {
            "book" => assert!(s >= seq, "a snapshot never goes back: {s} after {seq}"),
            "book_update" => {
                // One event may stand for several changes (conflation,
                // max_rate): it says how many, and the seq moves by that.
                let n = ev["conflated"].as_u64().unwrap_or(1);
                assert_eq!(s, seq + n, "no gap, no repeat (depth {depth}): {ev}");
                merged.fetch_add((n > 1) as u64, Ordering::SeqCst);
            }
            other => panic!("unexpected {other}: {ev}"),
        }
        assert_eq!(ev["depth"], depth, "{ev}");
        seq = s;
        copy.apply_event(&ev);
        assert!(
            copy.bids.len() <= depth && copy.asks.len() <= depth,
            "window kept"
        );
        assert_eq!(
            copy.checksum() as u64,
            ev["checksum"].as_u64().unwrap(),
            "checksum after seq {seq} at depth {depth}"
        );
    }
}

/// Random changes around 1000 (never crossed), applied to `model` too.
pub fn random_change(rng: &mut SmallRng, topic: &str, model: &mut Copy) -> Update {
    let mut u = Update::new(topic);
    for _ in 0..rng.random_range(1..=6) {
        let (side, price) = if rng.random_bool(0.5) {
            (Side::Bid, 900.0 + rng.random_range(0..200) as f64 * 0.5)
        } else {
            (Side::Ask, 1000.5 + rng.random_range(0..200) as f64 * 0.5)
        };
        let size = match rng.random_bool(0.35) {
            true => 0.0,
            false => rng.random_range(1..100) as f64 / 4.0,
        };
        model.set(side, price, size);
        u = u.level(side, price, size);
    }
    u
}
