//! Memory under an attack of clients that never read: what the server
//! counts follows what the process really grows by, and it goes back to the
//! system once the attackers leave (issue 25). A real `tickcastd` (its
//! allocator is part of what is tested), its RSS read from /proc.

mod common;

use common::Daemon;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tickcast::remote::{RemoteConfig, RemotePublisher};
use tickcast::Update;
use tungstenite::Message;

const TOKEN: &str = "memory-test-publisher";
const TOPICS: usize = 20_000;
const ATTACKERS: usize = 40;

/// The sum of `tickcast_memory_estimated_bytes` over its parts.
fn counted(addr: SocketAddr) -> f64 {
    common::metrics_page(addr)
        .lines()
        .filter(|l| l.starts_with("tickcast_memory_estimated_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A subscriber of everything that never reads, with a small receive
/// buffer so the server, not the kernel, holds what it is owed.
fn non_reader(addr: SocketAddr) -> tungstenite::WebSocket<std::net::TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), sock.into()).unwrap();
    ws.send(Message::text(r#"{"op":"subscribe","topics":["*"]}"#))
        .unwrap();
    ws
}

#[test]
fn memory_held_by_non_readers_is_counted_and_returned_when_they_leave() {
    let d = Daemon::start(&[
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--demo",
        "--demo-rate",
        "5000",
        "--publisher-token",
        TOKEN,
    ]);
    let (addr, pid) = (d.addr, d.child.id());
    let publisher =
        RemotePublisher::connect(RemoteConfig::new(format!("ws://{addr}/publish"), TOKEN)).unwrap();
    // Eight rounds: the ingest channels' rings (touched as they turn) and
    // the histories reach their working size before the baseline.
    for round in 0..8 {
        publisher
            .publish_batch((0..TOPICS).map(|i| {
                Update::new(format!("M.{i:06}"))
                    .bid(100.0 + (i + round) as f64)
                    .ask(100.5 + i as f64)
                    .last(100.25)
                    .volume(1e6)
            }))
            .unwrap();
    }
    publisher.flush(Duration::from_secs(60)).unwrap();
    common::wait_until("every topic is in the table", || {
        common::metric_at(addr, "tickcast_topics").unwrap_or(0.0) >= TOPICS as f64
    });
    std::thread::sleep(Duration::from_secs(1));
    let (rss_before, counted_before) = (common::rss_bytes(pid), counted(addr));

    // Each attacker is owed every topic's snapshot (~3 MB) and then the
    // demo's updates; none of it is read.
    let attackers: Vec<_> = (0..ATTACKERS).map(|_| non_reader(addr)).collect();
    // Each side's peak: the two are read one after the other (the count
    // through an HTTP request the shards answer), so the count read next to
    // RSS's highest sample can be a moment off its own; peak against peak
    // compares what the process grew to with what the server counted at
    // most, neither taken at a lucky instant.
    let (mut grew, mut counted_growth) = (0.0f64, 0.0f64);
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        grew = grew.max(common::rss_bytes(pid) - rss_before);
        counted_growth = counted_growth.max(counted(addr) - counted_before);
    }
    eprintln!(
        "before {:.1} MB; at their peaks RSS grew {:.1} MB, counted {:.1} MB",
        rss_before / 1e6,
        grew / 1e6,
        counted_growth / 1e6
    );
    assert!(grew > 25e6, "the attack did not take memory: {grew}");
    let ratio = grew / counted_growth;
    assert!(
        (1.0 / 1.3..=1.3).contains(&ratio),
        "RSS grew {ratio:.2}x what the server counted"
    );

    drop(attackers);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = common::rss_bytes(pid);
    while after > 1.5 * rss_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = common::rss_bytes(pid);
    }
    eprintln!("10 s after: {:.1} MB", after / 1e6);
    assert!(
        after <= 1.5 * rss_before,
        "RSS {:.1} MB after the attack, {:.1} MB before",
        after / 1e6,
        rss_before / 1e6
    );
}
