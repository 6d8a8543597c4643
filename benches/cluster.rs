//! Cluster-mode throughput and latency against real `redis-server`s
//! (`cargo bench --bench cluster`; needs redis-server and redis-cli on
//! PATH). Everything shares this machine with Redis and the feed: compare
//! the ratios of one run.
//!
//! Throughput, as a new user would try it: 400,000 updates over 1,000
//! topics, pre-packed MessagePack batches of 1,000 on one `/publish`
//! connection to node A, a `*` subscriber at `max_rate` 20 on node B; the
//! clock stops when node B holds every topic's last `seq`. The same feed
//! into a single node without Redis (publisher and subscriber on it), run
//! just before and just after, gives the ratio (to the mean of the two).
//! Then the same through a three-master Redis Cluster, Redis's
//! CPU per 100,000 updates for both, and publish-on-A to receive-on-B
//! latency at half the measured rate (a `*` subscriber on B without a rate
//! cap, every update stamped with its publish time).

#[path = "support/raw_publish.rs"]
mod raw_publish;
// Shared with the tests; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_procs;

use raw_publish::RawPublisher;
use redis_procs::{RedisCluster, RedisServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickcast::{Config, Server, Update};
use tungstenite::Message;

/// The allocator tickcastd runs on (the default `jemalloc` feature).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TOPICS: usize = 1_000;
const PER_TOPIC: usize = 400;
const BATCH: usize = 1_000;
const TOKEN: &str = "cluster-bench-token";

/// Used by `redis_procs` (shared with the tests).
fn require_tool(program: &str, version_arg: &str, install: &str) {
    let ok = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{program} is missing: apt-get install {install}");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn topic(i: usize) -> String {
    format!("B.{i:04}")
}

fn config() -> Config {
    Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .max_commands_per_sec(0.0)
        .publisher_tokens(vec![TOKEN.into()])
}

/// The feed, packed: round `r` of every topic per batch.
fn payloads() -> Vec<Vec<u8>> {
    (0..PER_TOPIC)
        .map(|round| {
            let batch: Vec<Update> = (0..BATCH)
                .map(|t| {
                    let px = 100.0 + (round % 97) as f64 * 0.01;
                    Update::new(topic(t % TOPICS)).bid(px).ask(px + 0.01)
                })
                .collect();
            tickcast::publish::encode(&batch)
        })
        .collect()
}

/// A subscriber of `*` on a server, read by a thread until stopped.
struct Sub {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Sub {
    /// Subscribes (acknowledged before this returns), at `max_rate` or
    /// uncapped; an uncapped one records each update's latency.
    fn start(server: &Server, max_rate: Option<u32>) -> Sub {
        Sub::start_on(server, "*", max_rate)
    }

    /// A subscriber of `pattern`.
    fn start_on(server: &Server, pattern: &str, max_rate: Option<u32>) -> Sub {
        let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", server.local_addr())).unwrap();
        let rate = max_rate.map_or(String::new(), |r| format!(r#","max_rate":{r}"#));
        ws.send(Message::text(format!(
            r#"{{"op":"subscribe","id":1,"topics":["{pattern}"]{rate}}}"#
        )))
        .unwrap();
        loop {
            if let Message::Text(t) = ws.read().unwrap() {
                if t.contains("subscribed") {
                    break;
                }
            }
        }
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut lat = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(Message::Text(t)) if max_rate.is_none() => {
                        // Read the stamp without a JSON parser: the reader
                        // must keep up, or its own backlog is measured.
                        if let Some(ts) = update_ts(&t) {
                            lat.push(now_ns().saturating_sub(ts));
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            lat
        });
        Sub { stop, thread }
    }

    /// Stops reading; returns the latencies recorded (ns).
    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The `ts` of an `update` event's JSON text.
fn update_ts(text: &str) -> Option<u64> {
    if !text.starts_with(r#"{"event":"update""#) {
        return None;
    }
    let at = text.find(r#""ts":"#)? + 5;
    let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// Waits until `server` holds every topic at `seq`.
fn wait_seq(server: &Server, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    for t in 0..TOPICS {
        let name = topic(t);
        while server.snapshot(&name).map_or(0, |s| s.seq) < seq {
            assert!(Instant::now() < deadline, "{name} never reached {seq}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Updates per second from `/publish` on `a` until `b` holds them all.
fn throughput(a: &Server, b: &Server, feed: &[Vec<u8>]) -> f64 {
    let mut publisher = RawPublisher::connect(a.local_addr(), TOKEN);
    let start = Instant::now();
    for p in feed {
        publisher.send(p);
    }
    wait_seq(b, PER_TOPIC as u64);
    (TOPICS * PER_TOPIC) as f64 / start.elapsed().as_secs_f64()
}

/// Publish-on-`a`, receive-on-`b` latency (p50, p99 in ms) at `rate`
/// updates/s for three seconds, through the Rust API, each update stamped,
/// sampled on a tenth of the topics.
fn latency(a: &Server, b: &Server, rate: f64) -> (f64, f64) {
    // B carries the same load as in the throughput run (a `*` subscriber
    // at max_rate 20); the latency is sampled on a tenth of the topics
    // (B.0000 to B.0099), every update of them, so the measuring client
    // keeps up and measures the server, not its own backlog.
    let load = Sub::start(b, Some(20));
    let reader = Sub::start_on(b, "B.00*", None);
    let p = a.publisher();
    let per_ms = (rate / 1000.0).max(1.0) as usize;
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(3) {
        let batch: Vec<Update> = (0..per_ms)
            .map(|k| {
                Update::new(topic((i + k) % TOPICS))
                    .bid(1.0 + (i % 100) as f64)
                    .timestamp_ns(now_ns())
            })
            .collect();
        i += per_ms;
        p.publish_batch(batch).unwrap();
        let due = start + Duration::from_micros((i as f64 / rate * 1e6) as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut lat = reader.stop();
    load.stop();
    lat.sort_unstable();
    let at = |q: f64| {
        lat.get((lat.len() as f64 * q) as usize)
            .map_or(0.0, |n| *n as f64 / 1e6)
    };
    (at(0.5), at(0.99))
}

const BOOKS: usize = 20;
const BOOK_CHANGES: usize = 2_000;

/// Book changes per second at depth 10: `BOOKS` books, `BOOK_CHANGES` each
/// (one to three levels, never crossing), published on `a` through the
/// Rust API in batches of 500, until `b` holds every book's last `seq`; a
/// subscriber of every book at depth 10 (max_rate 20) on `b`.
fn book_rate(a: &Server, b: &Server) -> f64 {
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", b.local_addr())).unwrap();
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["BK.*"],"depth":10,"max_rate":20}"#,
    ))
    .unwrap();
    let changes: Vec<Update> = (0..BOOKS * BOOK_CHANGES)
        .map(|i| {
            let book = format!("BK.{}.book", i % BOOKS);
            let k = (i / BOOKS) as f64;
            let mut u = Update::new(book);
            for j in 0..=(i % 3) {
                let step = ((k as usize + j * 7) % 40) as f64 * 0.5;
                let size = ((i + j) % 5) as f64;
                u = match j % 2 {
                    0 => u.level(tickcast::Side::Bid, 999.5 - step, size),
                    _ => u.level(tickcast::Side::Ask, 1000.5 + step, size),
                };
            }
            u
        })
        .collect();
    let p = a.publisher();
    let start = Instant::now();
    for batch in changes.chunks(500) {
        p.publish_batch(batch.to_vec()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for t in 0..BOOKS {
        let name = format!("BK.{t}.book");
        while b.snapshot(&name).map_or(0, |s| s.seq) < BOOK_CHANGES as u64 {
            assert!(
                Instant::now() < deadline,
                "{name} never reached its last seq"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let rate = (BOOKS * BOOK_CHANGES) as f64 / start.elapsed().as_secs_f64();
    drop(ws);
    rate
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    (f[11] + f[12]) as f64 / 100.0
}

fn pids(servers: &[&RedisServer]) -> Vec<u32> {
    servers
        .iter()
        .map(|s| s.child.as_ref().unwrap().id())
        .collect()
}

/// Two nodes on `url`: throughput, Redis CPU per 100k updates, and the
/// numbering-to-receipt view of node A's writer.
fn clustered(url: &str, redis: &[&RedisServer], feed: &[Vec<u8>], label: &str) -> f64 {
    let a = Server::start(config().redis(url.to_string())).unwrap();
    let b = Server::start(config().redis(url.to_string())).unwrap();
    let sub = Sub::start(&b, Some(20));
    let redis_port = redis[0].port;
    let redis = pids(redis);
    let cpu0: f64 = redis.iter().map(|p| cpu_seconds(*p)).sum();
    let own0 = cpu_seconds(std::process::id());
    // Redis's own view of its latency while it numbers (`redis-cli
    // --latency`: PINGs for about a second, min max avg in ms).
    let latency = std::process::Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "--latency", "--raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rate = throughput(&a, &b, feed);
    let pings = latency.wait_with_output().unwrap();
    let pings: Vec<String> = String::from_utf8_lossy(&pings.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if let [min, max, avg, n] = &pings[..] {
        println!("  redis-cli --latency during the run: min {min} ms, max {max} ms, avg {avg} ms over {n} PINGs");
    }
    let cpu = redis.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu0;
    let own = cpu_seconds(std::process::id()) - own0;
    let per_100k = |c: f64| c / (TOPICS * PER_TOPIC) as f64 * 1e5 * 1e3;
    println!(
        "{label:<32} {rate:>10.0} updates/s, CPU per 100k updates: Redis {:.0} ms, both nodes and the feed {:.0} ms; {:.0} updates per round trip",
        per_100k(cpu),
        per_100k(own),
        metric(&a, "tickcast_cluster_batched_total")
            / metric(&a, "tickcast_cluster_round_trips_total").max(1.0)
    );
    sub.stop();
    rate
}

/// Redis's own profile of the run: calls and time per command (the
/// script's inner calls are counted too).
fn commandstats(redis: &RedisServer) {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "info", "commandstats"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| l.starts_with("cmdstat_")) {
        let name = &line["cmdstat_".len()..line.find(':').unwrap_or(line.len())];
        let field = |k: &str| {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "    redis {name:<10} calls {:>9}  usec {:>9}  usec/call {:>7}",
            field("calls"),
            field("usec"),
            field("usec_per_call")
        );
    }
}

/// One unlabelled sample of a server's `/metrics` (0 when absent).
fn metric(server: &Server, name: &str) -> f64 {
    server
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The feed into one node without Redis (publisher and subscriber on it):
/// updates/s, printed with its CPU.
fn single_node(feed: &[Vec<u8>], label: &str) -> f64 {
    let single = Server::start(config()).unwrap();
    let sub = Sub::start(&single, Some(20));
    let own0 = cpu_seconds(std::process::id());
    let rate = throughput(&single, &single, feed);
    let own = cpu_seconds(std::process::id()) - own0;
    sub.stop();
    single.shutdown();
    println!(
        "{label:<32} {rate:>10.0} updates/s, CPU per 100k updates: the node and the feed {:.0} ms",
        own / (TOPICS * PER_TOPIC) as f64 * 1e8
    );
    rate
}

fn main() {
    let feed = payloads();
    println!(
        "{} updates over {TOPICS} topics through /publish, `*` subscriber at max_rate 20",
        TOPICS * PER_TOPIC
    );

    let before = single_node(&feed, "single node, no Redis");
    let redis = RedisServer::start_with(&["--appendonly", "no"]);
    let one = clustered(&redis.url(), &[&redis], &feed, "two nodes, one Redis");
    // The single node again, after: this box's speed moves between runs
    // (the single node alone ran at 1.3M to 1.9M updates/s from one run to
    // the next), so the ratio is to the mean of the runs on either side.
    let after = single_node(&feed, "single node again");
    let alone = (before + after) / 2.0;
    println!(
        "  ratio to the single node: {:.2} (to the run before: {:.2}, after: {:.2})",
        one / alone,
        one / before,
        one / after
    );
    commandstats(&redis);

    // Latency at half the rate just measured, on a fresh pair.
    let fresh = RedisServer::start_with(&["--appendonly", "no"]);
    let a = Server::start(config().redis(fresh.url())).unwrap();
    let b = Server::start(config().redis(fresh.url())).unwrap();
    let (p50, p99) = latency(&a, &b, one / 2.0);
    let lag = metric(&b, "tickcast_cluster_lag_seconds_sum")
        / metric(&b, "tickcast_cluster_lag_seconds_count").max(1.0);
    println!(
        "  (writer batches of {:.0} updates on average; numbering in Redis to receipt on B: mean {:.2} ms; topics B loaded past a gap: {})",
        metric(&a, "tickcast_cluster_batched_total")
            / metric(&a, "tickcast_cluster_round_trips_total").max(1.0),
        lag * 1e3,
        metric(&b, "tickcast_cluster_loads_total")
    );
    println!(
        "  publish on A to receive on B at {:.0} updates/s: p50 {p50:.2} ms, p99 {p99:.2} ms",
        one / 2.0
    );
    drop((a, b, fresh));

    // Order books, depth 10: one node, then two on a fresh Redis.
    let single = Server::start(config()).unwrap();
    let books_alone = book_rate(&single, &single);
    single.shutdown();
    let fresh = RedisServer::start_with(&["--appendonly", "no"]);
    let a = Server::start(config().redis(fresh.url())).unwrap();
    let b = Server::start(config().redis(fresh.url())).unwrap();
    let books = book_rate(&a, &b);
    println!(
        "{:<32} {books_alone:>10.0} book changes/s single node, {books:>.0} through one Redis ({:.2})",
        "order books, depth 10",
        books / books_alone
    );
    drop((a, b, fresh));

    let cluster = RedisCluster::start();
    let masters: Vec<&RedisServer> = cluster.nodes.iter().collect();
    let three = clustered(
        &cluster.url(),
        &masters,
        &feed,
        "two nodes, 3-master Redis Cluster",
    );
    println!("  ratio to the single node: {:.2}", three / alone);
}
