//! End-to-end ingest into one node: how many updates a second a feed can
//! put into a running server, through the Rust API and through `/publish`,
//! with 0, 1,000 or 10,000 subscribers at `max_rate` 10 (the dashboard
//! case). Run: `cargo bench --bench ingest [-- --subs 0,1000,10000]`
//! (needs the `loadgen` example built: `cargo build --release --example
//! loadgen`; the bench builds it if missing).
//!
//! Each run: a fresh server in this process; `loadgen` (a separate
//! process, its own mio loop) opens the subscribers, each on 10 of the
//! 1,000 topics with `max_rate` 10; once every one is in, 1,000,000
//! updates (1,000 per topic, batches of 1,000, built or packed before the
//! clock starts) go in as fast as back-pressure lets them. The clock stops
//! when the server's value of every topic holds its last `seq` (the router
//! has sequenced, merged, kept and encoded all of it). `loadgen` reports
//! what the subscribers received and the publish-to-receive latency
//! (with `max_rate` 10, mostly the wait for the topic's next slot).
//! Everything shares this machine: compare ratios of one run.
//! The process allocates with jemalloc, as tickcastd does (the default
//! `jemalloc` feature); `cargo bench --bench ingest --no-default-features`
//! runs it on glibc's malloc.

#[path = "support/raw_publish.rs"]
mod raw_publish;

use raw_publish::RawPublisher;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickcast::{Config, Server, Update};

/// The `jemalloc` feature (default): the process (server threads and feed)
/// allocates with jemalloc, as tickcastd does; without it, glibc's malloc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TOPICS: usize = 1_000;
const PER_TOPIC: usize = 1_000;
const BATCH: usize = 1_000;
const TOKEN: &str = "ingest-bench-token";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn topic(i: usize) -> String {
    format!("B.{i:04}")
}

/// The feed: batch `b` holds update `b` of every topic... spread so each
/// batch touches every topic once (the worst case for caches; a feed
/// publishing one topic at a time would be kinder).
fn batches() -> Vec<Vec<Update>> {
    (0..PER_TOPIC)
        .map(|round| {
            (0..BATCH)
                .map(|t| {
                    let px = 100.0 + (round % 97) as f64 * 0.01;
                    Update::new(topic(t % TOPICS))
                        .bid(px)
                        .ask(px + 0.01)
                        .bid_size(1.0 + (t % 5) as f64)
                })
                .collect()
        })
        .collect()
}

fn server() -> Server {
    let config = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .max_connections(20_000)
        .max_commands_per_sec(0.0)
        .publisher_tokens(vec![TOKEN.into()]);
    Server::start(config).expect("server")
}

/// Waits until every topic's value holds its last seq.
fn wait_sequenced(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in 0..TOPICS {
        let name = topic(t);
        while server.snapshot(&name).map_or(0, |s| s.seq) < PER_TOPIC as u64 {
            assert!(
                Instant::now() < deadline,
                "{name} never reached its last seq"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// CPU time this process (the server's threads and the feed) has used, in
/// seconds: on a shared, noisy box the CPU an update costs is steadier than
/// the rate.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Stamps every update with the time it is handed over, so `loadgen`'s
/// latency is publish-to-receive.
fn stamped(batch: &[Update]) -> Vec<Update> {
    let ts = now_ns();
    batch.iter().map(|u| u.clone().timestamp_ns(ts)).collect()
}

fn through_api(server: &Server, feed: &[Vec<Update>]) -> f64 {
    let publisher = server.publisher();
    let start = Instant::now();
    for batch in feed {
        publisher.publish_batch(stamped(batch)).expect("publish");
    }
    wait_sequenced(server);
    (TOPICS * PER_TOPIC) as f64 / start.elapsed().as_secs_f64()
}

/// Through `/publish`, pre-packed MessagePack batches on one connection.
fn through_publish(server: &Server, feed: &[Vec<Update>]) -> f64 {
    let mut publisher = RawPublisher::connect(server.local_addr(), TOKEN);
    // Packed before the clock starts, like a feed handler's own encoder.
    let payloads: Vec<Vec<u8>> = feed.iter().map(|b| tickcast::publish::encode(b)).collect();
    let start = Instant::now();
    for p in &payloads {
        publisher.send(p);
    }
    wait_sequenced(server);
    (TOPICS * PER_TOPIC) as f64 / start.elapsed().as_secs_f64()
}

struct Loadgen(Child);

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadgen_path() -> std::path::PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/examples/loadgen");
    if !path.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--release", "--example", "loadgen"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot build the loadgen example");
    }
    path
}

/// Starts `subs` subscribers (10 topics each, `max_rate` 10) and returns
/// once all are subscribed.
fn subscribers(addr: SocketAddr, subs: usize, seconds: f64) -> Loadgen {
    let mut child = Command::new(loadgen_path())
        .args(["--addr", &addr.to_string(), "--conns", &subs.to_string()])
        .args(["--topics", &TOPICS.to_string(), "--per-conn", "10"])
        .args(["--max-rate", "10", "--warmup", "0"])
        .args(["--duration", &seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.trim() == "READY" => break,
            Some(Ok(_)) => {}
            _ => panic!("loadgen ended before its subscribers were in"),
        }
    }
    Loadgen(child)
}

/// The JSON line `loadgen` prints at the end of its run.
fn report(mut lg: Loadgen) -> String {
    let mut out = String::new();
    lg.0.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out.trim().to_string()
}

fn main() {
    let mut subs_list = vec![0usize, 1_000];
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--subs") {
        subs_list = args[i + 1].split(',').map(|s| s.parse().unwrap()).collect();
    }
    let feed = batches();
    println!("# ingest: {TOPICS} topics x {PER_TOPIC} updates, batches of {BATCH}");
    println!("path      subs  updates/s cpu_us  subscribers (loadgen over the run)");
    println!("# cpu_us: CPU of this process (server threads and feed) per update");
    let alloc = if cfg!(feature = "jemalloc") {
        "jemalloc"
    } else {
        "glibc malloc"
    };
    println!("# allocator: {alloc}");
    for &subs in &subs_list {
        for path in ["rust-api", "/publish"] {
            let server = server();
            let lg = (subs > 0).then(|| subscribers(server.local_addr(), subs, 4.0));
            let cpu = cpu_seconds();
            let rate = match path {
                "rust-api" => through_api(&server, &feed),
                _ => through_publish(&server, &feed),
            };
            let us = (cpu_seconds() - cpu) * 1e6 / (TOPICS * PER_TOPIC) as f64;
            let seen = lg.map(report).unwrap_or_else(|| "-".into());
            println!("{path:9} {subs:5} {rate:10.0} {us:6.2}  {seen}");
            server.shutdown();
        }
    }
}
