//! A simulated feed, so a new user sees live prices at once (`tickcastd --demo`).
//!
//! Three dozen instruments across crypto, US equities, FX, futures and metals,
//! each a random walk around a realistic price with a realistic spread. Every
//! tick moves bid and ask; about one tick in three is also a trade (last,
//! last_size, volume), so partial updates and snapshot merging are exercised.
//! A few instruments (`BOOKS`) also have an order book (`BTC-USD.book`, 25
//! levels a side around the walk's bid and ask) and a trade topic
//! (`BTC-USD.trades`, one update per trade).

use crate::engine::ingest::Publisher;
use crate::model::book::Side;
use crate::model::update::Update;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// (topic, starting mid price, tick size, typical size)
const INSTRUMENTS: &[(&str, f64, f64, f64)] = &[
    ("BTC-USD", 64_250.0, 0.5, 0.25),
    ("ETH-USD", 3_150.0, 0.05, 2.0),
    ("SOL-USD", 145.0, 0.01, 25.0),
    ("XRP-USD", 0.52, 0.0001, 5_000.0),
    ("DOGE-USD", 0.12, 0.00001, 20_000.0),
    ("ADA-USD", 0.45, 0.0001, 8_000.0),
    ("AAPL", 189.5, 0.01, 100.0),
    ("MSFT", 415.2, 0.01, 100.0),
    ("NVDA", 875.0, 0.01, 100.0),
    ("AMZN", 182.3, 0.01, 100.0),
    ("GOOGL", 171.1, 0.01, 100.0),
    ("META", 495.0, 0.01, 100.0),
    ("TSLA", 177.8, 0.01, 100.0),
    ("JPM", 198.4, 0.01, 100.0),
    ("V", 275.6, 0.01, 100.0),
    ("XOM", 118.9, 0.01, 100.0),
    ("SPY", 520.4, 0.01, 200.0),
    ("QQQ", 445.7, 0.01, 200.0),
    ("FX.EURUSD", 1.0845, 0.00001, 1_000_000.0),
    ("FX.GBPUSD", 1.2712, 0.00001, 1_000_000.0),
    ("FX.USDJPY", 151.42, 0.001, 1_000_000.0),
    ("FX.AUDUSD", 0.6581, 0.00001, 1_000_000.0),
    ("FX.USDCHF", 0.9034, 0.00001, 1_000_000.0),
    ("FX.USDCAD", 1.3562, 0.00001, 1_000_000.0),
    ("FX.EURGBP", 0.8531, 0.00001, 1_000_000.0),
    ("FX.EURJPY", 164.21, 0.001, 1_000_000.0),
    ("FUT.ES", 5_245.25, 0.25, 5.0),
    ("FUT.NQ", 18_320.5, 0.25, 3.0),
    ("FUT.CL", 81.35, 0.01, 10.0),
    ("FUT.GC", 2_338.4, 0.1, 4.0),
    ("FUT.ZN", 109.5, 0.015625, 50.0),
    ("FUT.NG", 2.05, 0.001, 20.0),
    ("METAL.XAUUSD", 2_335.1, 0.01, 100.0),
    ("METAL.XAGUSD", 27.45, 0.001, 1_000.0),
    ("METAL.XPTUSD", 965.0, 0.1, 50.0),
    ("IDX.VIX", 14.2, 0.01, 1.0),
];

/// Instruments that also publish a book (`….book`) and trades (`….trades`).
const BOOKS: &[&str] = &["BTC-USD", "ETH-USD", "AAPL"];

/// Levels per side of a demo book.
const BOOK_LEVELS: usize = 25;

/// The names of the demo's topics.
pub fn topics() -> impl Iterator<Item = &'static str> {
    INSTRUMENTS.iter().map(|i| i.0)
}

struct Walk {
    topic: &'static str,
    mid: f64,
    tick: f64,
    size: f64,
    volume: f64,
}

impl Walk {
    fn step(&mut self, rng: &mut SmallRng) -> Update {
        // Relative volatility of about 2 bp per tick, never below one tick.
        let sigma = (self.mid * 0.0002).max(self.tick);
        let z: f64 = rng.random::<f64>() * 2.0 - 1.0;
        self.mid = (self.mid + z * sigma).max(self.tick * 10.0);
        let half_spread = self.tick * rng.random_range(1..=3) as f64;
        // Snap to the tick, then round to the tick's decimals by dividing by a
        // power of ten, so prices print as 189.28 and not 189.28000000000003.
        let scale = 10f64.powi(tick_decimals(self.tick));
        let round = |p: f64| (((p / self.tick).round() * self.tick) * scale).round() / scale;
        let bid = round(self.mid - half_spread);
        let ask = round(self.mid + half_spread).max(bid + self.tick);
        let mut u = Update::new(self.topic)
            .bid(bid)
            .ask(ask)
            .bid_size((self.size * rng.random_range(0.2..5.0f64)).round().max(1.0))
            .ask_size((self.size * rng.random_range(0.2..5.0f64)).round().max(1.0));
        if rng.random_range(0..3) == 0 {
            let qty = (self.size * rng.random_range(0.05..2.0f64))
                .round()
                .max(1.0);
            self.volume += qty;
            let px = if rng.random::<bool>() { ask } else { bid };
            u = u.last(px).last_size(qty).volume(self.volume);
        }
        u
    }

    /// For instruments in `BOOKS`: the book around the tick's bid and ask
    /// (a full replacement, sizes random), and the trade if it was one.
    fn book_and_trade(&self, u: &Update, rng: &mut SmallRng) -> Vec<Update> {
        if !BOOKS.contains(&self.topic) {
            return Vec::new();
        }
        let (Some(bid), Some(ask)) = (u.prices.bid, u.prices.ask) else {
            return Vec::new();
        };
        let scale = 10f64.powi(tick_decimals(self.tick));
        let round = |p: f64| (p * scale).round() / scale;
        let mut book = Update::new(format!("{}.book", self.topic)).replace_book();
        for i in 0..BOOK_LEVELS {
            let away = self.tick * i as f64;
            let mut size = || (self.size * rng.random_range(0.1..8.0f64) * scale).round() / scale;
            book = book
                .level(Side::Bid, round(bid - away), size().max(self.tick))
                .level(Side::Ask, round(ask + away), size().max(self.tick));
        }
        let mut out = vec![book];
        if let (Some(px), Some(qty)) = (u.prices.last, u.prices.last_size) {
            let trade = Update::new(format!("{}.trades", self.topic))
                .last(px)
                .last_size(qty);
            out.push(trade);
        }
        out
    }
}

/// Decimal places of a tick size (0.01 → 2, 0.015625 → 6).
fn tick_decimals(tick: f64) -> i32 {
    (0..=8)
        .find(|d| ((tick * 10f64.powi(*d)).round() - tick * 10f64.powi(*d)).abs() < 1e-9)
        .unwrap_or(8)
}

/// A running demo feed; stops when dropped.
pub struct DemoFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DemoFeed {
    /// Publishes about `rate` updates per second in total, spread over all
    /// instruments, until dropped. The first round publishes every instrument
    /// so every topic has a value at once.
    pub fn start(publisher: Publisher, rate: u32) -> DemoFeed {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let rate = rate.max(1);
        let thread = std::thread::Builder::new()
            .name("tickcast-demo".into())
            .spawn(move || run(publisher, rate, &flag))
            .expect("spawn demo thread");
        DemoFeed {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DemoFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(publisher: Publisher, rate: u32, stop: &AtomicBool) {
    let mut rng = SmallRng::from_os_rng();
    let mut walks: Vec<Walk> = INSTRUMENTS
        .iter()
        .map(|&(topic, mid, tick, size)| Walk {
            topic,
            mid,
            tick,
            size,
            volume: (size * 1_000.0).round(),
        })
        .collect();
    for w in &mut walks {
        let u = w.step(&mut rng);
        for extra in w.book_and_trade(&u, &mut rng) {
            if publisher.publish(extra).is_err() {
                return;
            }
        }
        if publisher.publish(u).is_err() {
            return;
        }
    }
    // Publish in small bursts every 10 ms (or slower for low rates) so a rate of
    // thousands per second costs few wake-ups.
    let tick = Duration::from_millis(10).max(Duration::from_secs(1) / rate);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut owed = 0.0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let i = rng.random_range(0..walks.len());
            let u = walks[i].step(&mut rng);
            let extras = walks[i].book_and_trade(&u, &mut rng);
            // A full queue drops a demo tick rather than stalling the clock.
            for u in std::iter::once(u).chain(extras) {
                match publisher.try_publish(u) {
                    Ok(())
                    | Err(crate::error::Error::Full | crate::error::Error::InvalidBook(_)) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_prices_are_clean_and_sane() {
        assert_eq!(tick_decimals(0.01), 2);
        assert_eq!(tick_decimals(0.00001), 5);
        assert_eq!(tick_decimals(0.25), 2);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut w = Walk {
            topic: "AAPL",
            mid: 189.5,
            tick: 0.01,
            size: 100.0,
            volume: 0.0,
        };
        for _ in 0..1000 {
            let u = w.step(&mut rng);
            let extras = w.book_and_trade(&u, &mut rng);
            let book = extras[0].levels.as_ref().expect("AAPL has a book");
            assert!(book.replace && book.levels.len() == 2 * BOOK_LEVELS);
            assert!(book.levels.iter().all(|l| l.size > 0.0));
            assert_eq!(
                extras.len() == 2,
                u.prices.last.is_some(),
                "a trade per trade"
            );
            let (bid, ask) = (u.prices.bid.unwrap(), u.prices.ask.unwrap());
            assert!(bid < ask, "{bid} < {ask}");
            for p in [bid, ask] {
                let s = p.to_string();
                assert!(s.split('.').nth(1).map_or(0, str::len) <= 2, "{s}");
            }
        }
    }
}
