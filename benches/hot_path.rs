//! Criterion benchmarks of the hot path's pieces. Run: `cargo bench --bench hot_path`.
//!
//! - encoding an update event to JSON and MessagePack, each into a ready frame;
//! - the router's per-update work (sequence, merge, encode, hand to a shard),
//!   for price updates and for order-book changes at depth 10 and 100;
//! - a shard appending one ready frame to 1,000 subscribers' outbound queues;
//! - decoding and checking a `/publish` frame of 1,000 updates;
//! - parsing a client's subscribe command.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tickcast::internals::{
    encode_price, parse_command as parse, FrameBuf, Outbound, Price, RouterBench, Tally,
};
use tickcast::{Format, Prices, Side, Update};

fn prices() -> Prices {
    Prices {
        bid: Some(64_250.5),
        ask: Some(64_251.0),
        bid_size: Some(1.25),
        ask_size: Some(0.5),
        ..Prices::default()
    }
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_update_frame");
    let mut fb = FrameBuf::default();
    let p = prices();
    for fmt in Format::ALL {
        g.bench_function(format!("{fmt:?}"), |b| {
            b.iter(|| {
                let update = Price::update("BTC-USD", 123_456, 1_795_315_911_425_217_275, &p);
                let f = encode_price(&mut fb, fmt, &update, &[]);
                black_box(f.len())
            })
        });
    }
    g.finish();
}

fn router(c: &mut Criterion) {
    let topics: Vec<String> = (0..100).map(|i| format!("B.{i:04}")).collect();
    let batch: Vec<Update> = (0..256)
        .map(|i| {
            Update::new(topics[i % topics.len()].clone())
                .bid(100.0 + i as f64 * 0.01)
                .ask(100.01 + i as f64 * 0.01)
                .timestamp_ns(1_795_315_911_425_217_275)
        })
        .collect();
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(batch.len() as u64));
    // With the default history (256 per topic) and without: the cost of
    // keeping updates for resume, on the router's hot path.
    for (name, history) in [
        ("route_batch_of_256_json", 256),
        ("route_batch_of_256_json_no_history", 0),
    ] {
        let mut r = RouterBench::with_history(&topics, history);
        g.bench_function(name, |b| b.iter(|| r.route(black_box(&batch))));
    }
    // Order books of 200 levels a side: each change sets a level among the
    // top 5 bids and one among the top 5 asks; the router diffs and encodes
    // the window of the depth subscribed.
    let books: Vec<String> = topics.iter().map(|t| format!("{t}.book")).collect();
    let changes: Vec<Update> = (0..256)
        .map(|i| {
            let k = (i % 5) as f64 * 0.01;
            let size = 1.0 + (i % 7) as f64;
            Update::new(books[i % books.len()].clone())
                .level(Side::Bid, 100.0 - k, size)
                .level(Side::Ask, 100.01 + k, size)
                .timestamp_ns(1_795_315_911_425_217_275)
        })
        .collect();
    for depth in [10, 100] {
        let mut r = RouterBench::with_books(&books, depth, 200);
        let name = format!("route_batch_of_256_book_changes_depth_{depth}");
        g.bench_function(name, |b| b.iter(|| r.route(black_box(&changes))));
    }
    g.finish();
}

fn fanout_append(c: &mut Criterion) {
    let mut fb = FrameBuf::default();
    let p = prices();
    let frame = encode_price(
        &mut fb,
        Format::Json,
        &Price::update("BTC-USD", 1, 1, &p),
        &[],
    )
    .to_vec();
    let mut queues: Vec<Outbound> = (0..1000).map(|_| Outbound::default()).collect();
    let mut sink = std::io::sink();
    let mut g = c.benchmark_group("shard");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_one_frame_to_1000_queues", |b| {
        b.iter(|| {
            for q in queues.iter_mut() {
                q.push(black_box(&frame));
                // Drain now and then (amortized away) so the queues stay warm
                // and bounded, as the shard's once-per-iteration flush does.
                if q.pending() > 2 * 1024 {
                    q.write_to(&mut sink, &mut Tally::default()).unwrap();
                }
            }
        })
    });
    g.finish();
}

/// A `/publish` frame of 1,000 price updates: decoded and each update
/// checked, as a shard does before the router sees them (compare per
/// update with the router's cost above).
fn publish_decode(c: &mut Criterion) {
    let updates: Vec<Update> = (0..1000)
        .map(|i| {
            Update::new(format!("B.{:04}", i % 1000))
                .bid(100.0 + i as f64 * 0.01)
                .ask(100.01 + i as f64 * 0.01)
                .bid_size(1.0 + (i % 5) as f64)
                .timestamp_ns(1_795_315_911_425_217_275)
        })
        .collect();
    let frame = tickcast::publish::encode(&updates);
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(updates.len() as u64));
    g.bench_function("decode_and_check_batch_of_1000", |b| {
        b.iter(|| {
            let items = tickcast::publish::decode(black_box(&frame)).unwrap();
            for item in &items {
                tickcast::publish::check_item(item, 256).unwrap();
            }
            items.len()
        })
    });
    g.finish();
}

fn parse_subscribe(c: &mut Criterion) {
    let cmd = br#"{"op":"subscribe","id":42,"topics":["BTC-USD","ETH-USD","FX.*","AAPL","MSFT"]}"#;
    c.bench_function("parse_subscribe_command", |b| {
        b.iter(|| parse(black_box(cmd), Format::Json).unwrap())
    });
}

/// The command an attacker can send without pause (issue 25): 1,024 topics,
/// the most one command may name.
fn parse_big_unsubscribe(c: &mut Criterion) {
    let topics: Vec<String> = (0..1024).map(|i| format!("\"SYM.{i:05}\"")).collect();
    let cmd = format!(
        r#"{{"op":"unsubscribe","id":7,"topics":[{}]}}"#,
        topics.join(",")
    );
    c.bench_function("parse_unsubscribe_1024_topics", |b| {
        b.iter(|| parse(black_box(cmd.as_bytes()), Format::Json).unwrap())
    });
}

criterion_group!(
    benches,
    encode,
    router,
    publish_decode,
    fanout_append,
    parse_subscribe,
    parse_big_unsubscribe
);
criterion_main!(benches);
