//! Benchmark: how long one client's big request silences the others.
//!
//! ```text
//! cargo run --release --example silence -- [--topics 100000] [--shards 1]
//! ```
//! An embedded server holds `--topics` topics. A keeper subscribes to one
//! more topic, `K`, published every millisecond, and measures the longest
//! time between two of its events while, one after another:
//! - a client subscribes to `*` and reads its snapshots (a join over every topic);
//! - it unsubscribes from `*` (a withdrawal over every topic);
//! - a client subscribes to `*`, reads its snapshots, and drops its socket
//!   without a close frame;
//! - a client subscribes to `*` and never reads (its snapshots back up).
//!
//! With one shard (the default) the keeper and the big client share a loop:
//! the worst case. Prints one line per phase with the keeper's longest
//! silence and the phase's duration. Target (issue 25): ≤ 20 ms.

mod cli_args;

use cli_args::arg;
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tickcast::{Config, Server, Update};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect(addr: SocketAddr) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    tungstenite::client(format!("ws://{addr}/ws"), stream)
        .expect("handshake")
        .0
}

fn subscribe(ws: &mut Ws, topics: &str) {
    let cmd = format!(r#"{{"op":"subscribe","topics":["{topics}"]}}"#);
    ws.send(Message::text(cmd)).unwrap();
}

/// Reads until `n` snapshots came.
fn read_snapshots(ws: &mut Ws, n: usize) {
    let mut got = 0;
    while got < n {
        if let Message::Text(t) = ws.read().unwrap() {
            got += usize::from(t.contains(r#""event":"snapshot""#));
        }
    }
}

fn main() {
    let topics = arg("--topics", 100_000);
    let shards = arg("--shards", 1);
    let cfg = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(shards)
        .max_topics(topics + 10);
    let server = Server::start(cfg).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    for i in 0..topics {
        p.publish(Update::new(format!("T.{i:06}")).bid(1.0).ask(2.0))
            .unwrap();
    }
    while server.topic_count() < topics {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (stop, longest) = (
        &AtomicBool::new(false),
        &parking_lot::Mutex::new(Duration::ZERO),
    );
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                p.publish(Update::new("K").bid(i as f64)).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut keeper = connect(addr);
        subscribe(&mut keeper, "K");
        keeper
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let got = matches!(keeper.read(), Ok(Message::Text(_)));
                let now = Instant::now();
                let mut l = longest.lock();
                *l = (*l).max(now - last);
                if got {
                    last = now;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let phase = |name: &str, f: &mut dyn FnMut()| {
            std::thread::sleep(Duration::from_millis(200));
            *longest.lock() = Duration::ZERO;
            let t = Instant::now();
            f();
            std::thread::sleep(Duration::from_millis(200));
            println!(
                "{name:<48} keeper's longest silence {:>7.1} ms  (phase {:.0} ms)",
                longest.lock().as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3 - 200.0
            );
        };
        let mut big = connect(addr);
        phase(
            &format!("subscribe * over {topics} topics, read all"),
            &mut || {
                subscribe(&mut big, "*");
                read_snapshots(&mut big, topics + 1);
            },
        );
        phase("unsubscribe *", &mut || {
            big.send(Message::text(r#"{"op":"unsubscribe","topics":["*"]}"#))
                .unwrap();
            loop {
                let m = big.read().unwrap();
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["event"] == "unsubscribed" {
                        break;
                    }
                }
            }
        });
        let mut dropper = connect(addr);
        subscribe(&mut dropper, "*");
        read_snapshots(&mut dropper, topics + 1);
        phase("a subscriber of * drops its socket", &mut || {
            drop(std::mem::replace(&mut dropper, connect(addr)));
        });
        phase("subscribe * and never read", &mut || {
            subscribe(&mut dropper, "*");
            std::thread::sleep(Duration::from_secs(1));
        });
        stop.store(true, Ordering::Relaxed);
    });
}
