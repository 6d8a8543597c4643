//! Benchmark: 1,000 clients reconnect at once, resuming with `since`, against
//! the same 1,000 re-subscribing for snapshots. An embedded server (its own
//! threads) and the clients (one thread, blocking sockets) share the process.
//!
//! ```text
//! cargo run --release --example resume_storm -- [--clients 1000] [--topics 100] [--missed 50]
//! ```
//! Each client subscribes to 10 of the topics, reads until it holds every
//! one, and disconnects; then every topic gets `--missed` updates; then all
//! clients reconnect in one burst (every connection opened and its subscribe
//! sent before any reply is read) and read until they are current again.
//! Prints one line per mode: wall time of the burst, events and bytes the
//! clients read, and the server's CPU time over the burst.

mod cli_args;
mod proc_stat;

use cli_args::arg;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tickcast::{Config, Server, Update};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect(addr: std::net::SocketAddr) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    tungstenite::client(format!("ws://{addr}/ws"), stream)
        .expect("handshake")
        .0
}

/// Reads until every topic of `want` is at its seq; returns (events, bytes).
fn read_until_current(
    ws: &mut Ws,
    held: &mut HashMap<String, (u64, String)>,
    want: &HashMap<String, u64>,
) -> (u64, u64) {
    let (mut events, mut bytes) = (0, 0);
    while want
        .iter()
        .any(|(t, s)| held.get(t).map(|h| h.0) != Some(*s))
    {
        let Message::Text(t) = ws.read().expect("read") else {
            continue;
        };
        bytes += t.len() as u64;
        let ev: Value = serde_json::from_str(&t).unwrap();
        let kind = ev["event"].as_str().unwrap_or("");
        if kind != "snapshot" && kind != "update" {
            continue;
        }
        events += 1;
        let topic = ev["topic"].as_str().unwrap().to_string();
        let entry = held.entry(topic).or_insert((0, String::new()));
        entry.0 = ev["seq"].as_u64().unwrap();
        if let Some(e) = ev["epoch"].as_str() {
            entry.1 = e.to_string();
        }
    }
    (events, bytes)
}

fn main() {
    let clients = arg("--clients", 1000);
    let topics = arg("--topics", 100);
    let missed: u64 = arg("--missed", 50);
    let server = Server::start(
        Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .max_connections(100_000),
    )
    .unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    let names: Vec<String> = (0..topics).map(|t| format!("RS.{t:04}")).collect();
    for round in 0..10 {
        for n in &names {
            p.publish(Update::new(n).bid(round as f64)).unwrap();
        }
    }
    let seq_now = |server: &Server| -> HashMap<String, u64> {
        names
            .iter()
            .map(|n| (n.clone(), server.snapshot(n).map_or(0, |s| s.seq)))
            .collect()
    };
    while seq_now(&server).values().any(|s| *s < 10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let topics_of = |c: usize| -> Vec<String> {
        (0..10)
            .map(|k| names[(c * 10 + k) % topics].clone())
            .collect()
    };
    // Connect, subscribe, hold the snapshots, leave.
    let now = seq_now(&server);
    let mut held: Vec<HashMap<String, (u64, String)>> = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut ws = connect(addr);
        let mine = topics_of(c);
        ws.send(Message::text(
            json!({"op":"subscribe","id":1,"topics":mine}).to_string(),
        ))
        .unwrap();
        let want: HashMap<String, u64> = mine.iter().map(|t| (t.clone(), now[t])).collect();
        let mut h = HashMap::new();
        read_until_current(&mut ws, &mut h, &want);
        held.push(h);
    }
    // They are away while every topic moves on.
    for round in 0..missed {
        for n in &names {
            p.publish(Update::new(n).ask(round as f64)).unwrap();
        }
    }
    let target: u64 = 10 + missed;
    while seq_now(&server).values().any(|s| *s < target) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let now = seq_now(&server);
    println!("{clients} clients x 10 of {topics} topics, {missed} updates missed per topic");
    for resume in [true, false] {
        let cpu0 = proc_stat::cpu_seconds("self");
        let t0 = Instant::now();
        let mut socks: Vec<Ws> = Vec::with_capacity(clients);
        for (c, h) in held.iter().enumerate() {
            let mut ws = connect(addr);
            let mine = topics_of(c);
            let mut cmd = json!({"op":"subscribe","id":1,"topics":mine});
            if resume {
                cmd["since"] = h
                    .iter()
                    .map(|(t, (seq, epoch))| (t.clone(), json!({"seq": seq, "epoch": epoch})))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            ws.send(Message::text(cmd.to_string())).unwrap();
            socks.push(ws);
        }
        let (mut events, mut bytes) = (0, 0);
        for (c, ws) in socks.iter_mut().enumerate() {
            let mine = topics_of(c);
            let want: HashMap<String, u64> = mine.iter().map(|t| (t.clone(), now[t])).collect();
            let mut h = held[c].clone();
            let (e, b) = read_until_current(ws, &mut h, &want);
            events += e;
            bytes += b;
        }
        let wall = t0.elapsed();
        let cpu = proc_stat::cpu_seconds("self") - cpu0;
        println!(
            "{:<9} wall {:>7.1} ms  events {:>8}  bytes {:>10}  process cpu {:>6.2} s",
            if resume { "since" } else { "snapshot" },
            wall.as_secs_f64() * 1000.0,
            events,
            bytes,
            cpu
        );
        drop(socks);
        std::thread::sleep(Duration::from_millis(500));
    }
    server.shutdown();
}
