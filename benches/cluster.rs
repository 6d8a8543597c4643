//! Cluster-mode throughput and latency against a real `redis-server`
//! (`cargo bench --bench cluster`; needs redis-server on PATH). Two nodes
//! on one Redis: a feed publishes on node A as fast as back-pressure lets
//! it, a subscriber of `*` on node B counts what arrives. The same run on a
//! single node without Redis gives the ratio. Both share this machine with
//! Redis and the load generator: compare the ratios of one run.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickcast::{Config, Server, Update};
use tungstenite::Message;

const TOPICS: u64 = 100;
const UPDATES: u64 = 200_000;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> (Redis, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (Redis(child), format!("redis://127.0.0.1:{port}"))
}

fn config() -> Config {
    Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .max_commands_per_sec(0.0)
}

/// Publishes on `publish_on`, counts on `count_on`; returns updates per
/// second end to end.
fn run(publish_on: &Server, count_on: &Server) -> f64 {
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", count_on.local_addr())).unwrap();
    ws.send(Message::text(r#"{"op":"subscribe","id":1,"topics":["*"]}"#))
        .unwrap();
    // The subscribe is acknowledged before the feed starts.
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            if t.contains("subscribed") {
                break;
            }
        }
    }
    let p = publish_on.publisher();
    let start = Instant::now();
    let feed = std::thread::spawn(move || {
        for i in 0..UPDATES {
            p.publish(Update::new(format!("B.{}", i % TOPICS)).bid(i as f64))
                .unwrap();
        }
    });
    // Done when every topic's last `seq` is in: a subscriber that falls
    // behind gets conflated events (fewer, each standing for several).
    let mut last = std::collections::HashMap::new();
    let mut total = 0;
    while total < UPDATES {
        if let Message::Text(t) = ws.read().unwrap() {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if let (Some(topic), Some(seq)) = (v["topic"].as_str(), v["seq"].as_u64()) {
                let before = last.insert(topic.to_string(), seq).unwrap_or(0);
                total += seq.saturating_sub(before);
            }
        }
    }
    feed.join().unwrap();
    UPDATES as f64 / start.elapsed().as_secs_f64()
}

/// One unlabelled sample of a server's `/metrics` page (0 when absent).
fn metric(server: &Server, name: &str) -> f64 {
    server
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let single = Server::start(config()).unwrap();
    let alone = run(&single, &single);
    single.shutdown();
    let (_redis, url) = redis();
    let a = Server::start(config().redis(url.clone())).unwrap();
    let b = Server::start(config().redis(url)).unwrap();
    let clustered = run(&a, &b);
    let trips = metric(&a, "tickcast_cluster_round_trips_total");
    let batched = metric(&a, "tickcast_cluster_batched_total");
    let lag_sum = metric(&b, "tickcast_cluster_lag_seconds_sum");
    let lag_count = metric(&b, "tickcast_cluster_lag_seconds_count");
    println!("{UPDATES} updates over {TOPICS} topics, one subscriber of *");
    println!("single node, no Redis:   {alone:>10.0} updates/s");
    println!(
        "two nodes on one Redis:  {clustered:>10.0} updates/s ({:.2} of single)",
        clustered / alone
    );
    println!(
        "writer: {trips} round trips, {:.1} updates per pipeline",
        batched / trips.max(1.0)
    );
    println!(
        "numbering-to-receipt lag on node B: mean {:.3} ms over {lag_count} updates (under full load, queues included)",
        lag_sum / lag_count.max(1.0) * 1e3
    );
}
