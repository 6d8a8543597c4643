//! The tickcast side of benches/fanout.sh: an embedded server plus a publisher
//! thread in the same process, publishing on a fixed schedule.
//!
//! ```text
//! bench_server --listen 127.0.0.1:9000 --rate 10000 --topics 100 [--shards 1] [--start-after N]
//! ```
//! `--rate` is updates per second across all topics (`B.0000`, `B.0001`, ...,
//! round-robin), published in bursts every millisecond as the peers' schedule
//! (benches/peers/schedule.js) does. Each update is stamped with its
//! *scheduled* time, so if the server falls behind, the subscribers measure
//! the delay. Open-loop: the schedule never waits for the subscribers. About
//! 110 bytes on the wire.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickcast::{Config, Server, Side, Update};

/// The allocator tickcastd runs on (the default `jemalloc` feature), so the
/// fan-out benchmark measures what the daemon would do.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut listen = "127.0.0.1:9000".to_string();
    let mut rate: f64 = 10_000.0;
    let mut topics: usize = 100;
    let mut shards: usize = 1;
    let mut start_after: usize = 0;
    // `--books L`: the topics are order books (`B.0000.book`) of L levels a
    // side, and each publish changes two levels near the top of one.
    let mut books: usize = 0;
    // `--deflate-min N`: permessage-deflate's shared mode compresses event
    // frames of N bytes or more (0: all, as uWS.js's compression does).
    let mut deflate_min: usize = 256;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = val,
            "--rate" => rate = val.parse().unwrap(),
            "--topics" => topics = val.parse().unwrap(),
            "--shards" => shards = val.parse().unwrap(),
            "--start-after" => start_after = val.parse().unwrap(),
            "--books" => books = val.parse().unwrap(),
            "--deflate-min" => deflate_min = val.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    let cfg = Config::default()
        .listen(listen.parse().expect("--listen host:port"))
        .shards(shards)
        .max_connections(1_000_000)
        // Raw fan-out, like the peers (uWS.js runs with a 64 MiB backpressure
        // limit): conflation would skip updates under overload and make the
        // delivered rates incomparable.
        .conflate_bytes(32 * 1024 * 1024)
        .max_outbound_bytes(64 * 1024 * 1024)
        .deflate_min_bytes(deflate_min);
    let server = Server::start(cfg).expect("start");
    println!("listening on {}", server.local_addr());
    let publisher = server.publisher();
    let suffix = if books > 0 { ".book" } else { "" };
    let names: Vec<String> = (0..topics).map(|i| format!("B.{i:04}{suffix}")).collect();
    for name in names.iter().filter(|_| books > 0) {
        let mut full = Update::new(name.as_str()).replace_book();
        for l in 0..books {
            full = full.level(Side::Bid, 100.0 - l as f64 * 0.01, 5.0).level(
                Side::Ask,
                100.01 + l as f64 * 0.01,
                5.0,
            );
        }
        publisher.publish(full).expect("book");
    }
    if rate <= 0.0 {
        // Idle mode, for memory per connection.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    // Publishing starts once the load generator's connections are all in, so
    // every system is measured on the same settled topology.
    while server.connection_count() < start_after {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let epoch0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let t0 = Instant::now();
    let mut sent: u64 = 0;
    let mut seq: u64 = 0;
    loop {
        // Bursts every millisecond, as the peers' schedule (benches/peers/
        // schedule.js) publishes, so every server is offered the same load.
        std::thread::sleep(Duration::from_millis(1));
        // Update n is due at n / rate: at time t, updates 0..=t * rate are.
        let due = (t0.elapsed().as_secs_f64() * rate) as u64 + 1;
        while sent < due {
            let scheduled = epoch0 + (sent as f64 * 1e9 / rate) as u64;
            let topic = &names[(sent as usize) % topics];
            seq += 1;
            let px = 100.0 + (seq % 1000) as f64 * 0.01;
            let u = if books > 0 {
                // A size change at one of the top 5 bids and one of the top
                // 5 asks: inside every subscriber's window.
                let k = (seq % 5) as f64 * 0.01;
                let size = 1.0 + (seq % 7) as f64;
                Update::new(topic.as_str())
                    .level(Side::Bid, 100.0 - k, size)
                    .level(Side::Ask, 100.01 + k, size)
                    .timestamp_ns(scheduled)
            } else {
                Update::new(topic.as_str())
                    .bid(px)
                    .ask(px + 0.01)
                    .bid_size(5.0)
                    .ask_size(7.0)
                    .timestamp_ns(scheduled)
            };
            if publisher.publish(u).is_err() {
                return;
            }
            sent += 1;
        }
    }
}
