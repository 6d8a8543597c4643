//! The direct reader against the serde decoder it replaced, on random
//! frames, and against broken bytes.

use super::read::read_frame;
use super::serde_reference::decode_serde;
use super::{Item, PublishError};
use crate::model::book::Side;
use crate::model::update::Update;
use rand::{rngs::SmallRng, Rng as _, SeedableRng};
use serde_json::{json, Map, Value};

/// A seeded generator: the tests are random but repeatable.
struct Rng(SmallRng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.random()
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A value of any type a careless publisher might send.
    fn value(&mut self) -> Value {
        match self.pick(9) {
            0 => Value::Null,
            1 => json!(self.pick(2) == 0),
            2 => json!(self.pick(1_000)),
            3 => json!(-(self.pick(1_000) as i64)),
            4 => json!(self.pick(100_000) as f64 / 7.0),
            5 => json!(u64::MAX - self.pick(3)),
            6 => json!("text"),
            7 => json!([[1.5, 2], [3, 0]]),
            _ => json!({"a": 1}),
        }
    }

    fn entry(&mut self) -> Value {
        let mut m = Map::new();
        if self.pick(20) != 0 {
            m.insert("topic".into(), json!(format!("T.{}", self.pick(50))));
        }
        let keys = [
            "ts",
            "bid",
            "ask",
            "last",
            "bid_size",
            "ask_size",
            "last_size",
            "volume",
            "clear",
            "bids",
            "asks",
            "replace",
            "iv",
            "oi",
            "bogus",
        ];
        for k in keys {
            if self.pick(3) == 0 {
                // Mostly well-typed, sometimes not.
                let v = match (k, self.pick(4)) {
                    (_, 0) => self.value(),
                    ("ts", _) => json!(self.pick(1 << 40)),
                    ("clear" | "replace", _) => json!(self.pick(2) == 0),
                    ("bids" | "asks", _) => {
                        json!([[100.0 + self.pick(9) as f64, self.pick(5)]])
                    }
                    ("bogus", _) => json!(1),
                    _ => json!(self.pick(100_000) as f64 / 8.0),
                };
                m.insert(k.into(), v);
            }
        }
        Value::Object(m)
    }
}

fn same(payload: &[u8], names: &[Box<str>]) -> bool {
    let ours = read_frame(payload, names);
    let theirs = decode_serde(payload, names);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(PublishError::Undecodable(_)), Err(PublishError::Undecodable(_))) => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("ours {ours:?}, serde {theirs:?}"),
    }
    ours.is_ok()
}

#[test]
fn reads_random_frames_exactly_as_the_serde_decoder_did() {
    let names: Vec<Box<str>> = vec!["iv".into(), "oi".into()];
    let mut rng = Rng(SmallRng::seed_from_u64(0x1234_5678_9abc_def1));
    let mut accepted = 0;
    for _ in 0..20_000 {
        let frame = match rng.pick(3) {
            0 => rng.entry(),
            _ => Value::Array((0..rng.pick(6)).map(|_| rng.entry()).collect()),
        };
        accepted += usize::from(same(&rmp_serde::to_vec(&frame).unwrap(), &names));
    }
    // Both outcomes are exercised: a generator that only made refusals
    // (or only good frames) would prove little.
    assert!((2_000..18_000).contains(&accepted), "{accepted} accepted");
}

#[test]
fn reads_the_clients_own_encoding() {
    let updates = vec![
        Update::new("A").bid(1.0).ask(2.0).timestamp_ns(7),
        Update::new("B.book")
            .level(Side::Bid, 99.5, 3.0)
            .level(Side::Ask, 100.0, 0.0),
    ];
    let frame = crate::wire::publish::encode(&updates);
    let items = read_frame(&frame, &[]).unwrap();
    let expected: Vec<Item> = updates.into_iter().map(Item::Update).collect();
    assert_eq!(items, expected);
}

#[test]
fn broken_bytes_are_refused_never_a_panic() {
    let mut rng = Rng(SmallRng::seed_from_u64(42));
    let good = rmp_serde::to_vec(&json!([{"topic": "A", "bid": 1.5, "bids": [[1, 2]]}])).unwrap();
    for _ in 0..20_000 {
        let mut b = good.clone();
        match rng.pick(3) {
            0 => b.truncate(rng.pick(b.len() as u64) as usize),
            1 => {
                let i = rng.pick(b.len() as u64) as usize;
                b[i] = rng.next() as u8;
            }
            _ => b.push(rng.next() as u8),
        }
        let _ = read_frame(&b, &[]);
    }
    assert!(read_frame(&[], &[]).is_err());
    assert!(read_frame(&[0xc1], &[]).is_err());
    // A huge declared length with nothing behind it.
    assert!(read_frame(&[0xdd, 0xff, 0xff, 0xff, 0xff], &[]).is_err());
}
