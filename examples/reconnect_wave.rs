//! Benchmark: what a reconnect wave costs the shard that serves it.
//!
//! ```text
//! cargo run --release --example reconnect_wave -- [--topics 20000] [--readers 16] [--waves 6] [--stuck 0]
//! ```
//! An embedded server with one shard holds `--topics` topics. In each wave
//! `--readers` clients connect together, subscribe to `*`, read every
//! snapshot and drop their sockets; the wave ends when the shard's index
//! has withdrawn every membership (`tickcast_index_memberships` back to 0).
//! Prints, per wave, the shard thread's time on the CPU (from
//! `/proc/self/task/*/schedstat`, so the clients' own work is not counted)
//! and the wall time; then the mean of all waves but the first (which
//! also warms the allocator). Issue 25: the soak's reconnect waves, where
//! the index tears down and rebuilds every topic's entry. `--stuck N`
//! adds, for the whole run, N clients that subscribe to `*` and never
//! read, as the soak's non-readers do: their joins stop after the first
//! chunk and stay under way.

mod cli_args;

use cli_args::arg;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tickcast::{Config, Server, Update};
use tungstenite::{Message, WebSocket};

/// The shard thread's time on the CPU so far, in nanoseconds.
fn shard_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("tickcast-shard") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Connects, subscribes to `*` and reads `n` snapshots; returns the socket.
fn read_everything(addr: SocketAddr, n: usize) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut ws = tungstenite::client(format!("ws://{addr}/ws"), stream)
        .expect("handshake")
        .0;
    ws.send(Message::text(r#"{"op":"subscribe","topics":["*"]}"#))
        .unwrap();
    let mut got = 0;
    while got < n {
        if let Message::Text(t) = ws.read().expect("read") {
            got += usize::from(t.contains(r#""event":"snapshot""#));
        }
    }
    ws
}

/// Subscribes to `*` with a tiny receive buffer and never reads.
fn stuck(addr: SocketAddr) -> WebSocket<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).expect("connect");
    let stream: TcpStream = sock.into();
    let mut ws = tungstenite::client(format!("ws://{addr}/ws"), stream)
        .expect("handshake")
        .0;
    ws.send(Message::text(r#"{"op":"subscribe","topics":["*"]}"#))
        .unwrap();
    ws
}

fn memberships(server: &Server) -> f64 {
    let text = server.metrics_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("tickcast_index_memberships "))
        .expect("the memberships gauge");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn main() {
    let topics = arg("--topics", 20_000);
    let readers = arg("--readers", 16);
    let waves = arg("--waves", 6);
    let stuck_ones = arg("--stuck", 0);
    let cfg = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .max_topics(topics + 10)
        .max_connections(readers + stuck_ones + 16)
        // As the soak's daemon: a client that does not read is stuck
        // after its first chunks, not after the kernel took 2 MB.
        .socket_send_buffer(65_536)
        .max_outbound_bytes(4 << 20);
    let server = Server::start(cfg).expect("server");
    let addr = server.local_addr();
    let p = server.publisher();
    for i in 0..topics {
        p.publish(Update::new(format!("T.{i:06}")).bid(i as f64))
            .unwrap();
    }
    let last = format!("T.{:06}", topics - 1);
    while server.snapshot(&last).is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let held: Vec<_> = (0..stuck_ones).map(|_| stuck(addr)).collect();
    // Their first chunks are queued (and stop there) before the waves.
    std::thread::sleep(Duration::from_millis(500));
    let base = memberships(&server);
    println!("memberships held by the stuck ones: {base}");
    println!("topics {topics}, readers {readers}, stuck {stuck_ones}, one shard");
    let mut costs = Vec::new();
    for wave in 0..waves {
        let (cpu0, t0) = (shard_cpu_ns(), Instant::now());
        let sockets: Vec<_> = std::thread::scope(|s| {
            let joins: Vec<_> = (0..readers)
                .map(|_| s.spawn(|| read_everything(addr, topics)))
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let joined = (shard_cpu_ns() - cpu0) as f64 / 1e6;
        let cpu1 = shard_cpu_ns();
        // Dropped without a close frame, as a reconnecting dashboard's
        // lost connection does.
        drop(sockets);
        while memberships(&server) > base {
            std::thread::sleep(Duration::from_millis(1));
        }
        let left = (shard_cpu_ns() - cpu1) as f64 / 1e6;
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        println!(
            "wave {wave}: shard CPU {:.1} ms (joins and snapshots {joined:.1}, withdrawals {left:.1}), wall {wall:.0} ms",
            joined + left
        );
        if wave > 0 {
            costs.push((joined, left));
        }
    }
    drop(held);
    let n = costs.len().max(1) as f64;
    let (j, l) = costs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    println!(
        "mean of waves 1..: shard CPU {:.1} ms (joins and snapshots {:.1}, withdrawals {:.1})",
        (j + l) / n,
        j / n,
        l / n
    );
}
