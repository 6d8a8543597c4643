//! Bytes on the wire per event, and server CPU per delivered event, on the
//! demo feed, for each way a subscriber can receive it (issue 26):
//!
//! - plain: one JSON event per message, nothing compressed;
//! - shared: permessage-deflate, each event frame of at least
//!   `deflate_min_bytes` compressed once for every subscriber;
//! - per-connection: a compression window per connection;
//! - batched + shared and batched + per-connection: the events of one
//!   flush in one message, compressed as a whole.
//!
//! `cargo bench --bench bandwidth [-- --subs N --rate R --secs S]`. Each mode
//! runs on its own server in this process (the demo feed publishing R
//! updates a second, N subscribers of `*` reading every byte); server CPU is
//! the shard and router threads' own (from /proc), so the subscribers'
//! inflating is not counted.

use flate2::{Decompress, FlushDecompress};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::{Config, Server};

#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    offer: bool,
    batch: bool,
    per_connection: bool,
}

const MODES: [Mode; 5] = [
    Mode {
        name: "plain",
        offer: false,
        batch: false,
        per_connection: false,
    },
    Mode {
        name: "shared",
        offer: true,
        batch: false,
        per_connection: false,
    },
    Mode {
        name: "per-connection",
        offer: true,
        batch: false,
        per_connection: true,
    },
    Mode {
        name: "batched + shared",
        offer: true,
        batch: true,
        per_connection: false,
    },
    Mode {
        name: "batched + per-connection",
        offer: true,
        batch: true,
        per_connection: true,
    },
];

/// What one subscriber counted.
#[derive(Default)]
struct Counts {
    wire: AtomicU64,
    events: AtomicU64,
    messages: AtomicU64,
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process's threads whose names start with one of `prefixes`.
fn thread_cpu(prefixes: &[&str]) -> f64 {
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| comm.starts_with(p)) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        if f.len() > 12 {
            total +=
                (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / tick;
        }
    }
    total
}

/// Connects, subscribes to `*` and counts until `stop`.
fn subscriber(addr: SocketAddr, mode: Mode, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let ext = if mode.offer {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let proto = if mode.batch {
        "tickcast.json+batch"
    } else {
        "tickcast.json"
    };
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {proto}\r\n{ext}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let head_end = loop {
        // A busy server may take longer than the read timeout to answer.
        let Ok(n) = s.read(&mut chunk) else { continue };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let keeps_window =
        head.contains("permessage-deflate") && !head.contains("server_no_context_takeover");
    assert_eq!(mode.per_connection, keeps_window, "{}: {head}", mode.name);
    buf.drain(..head_end);
    // The subscribe command, masked with a zero key.
    let cmd = br#"{"op":"subscribe","topics":["*"]}"#;
    let mut f = vec![0x81, 0x80 | cmd.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(cmd);
    s.write_all(&f).unwrap();
    let mut window = Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                counts.wire.fetch_add(n as u64, Ordering::Relaxed);
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) => continue,
        }
        let mut at = 0;
        while let Some((rsv1, payload, len)) = frame(&buf[at..]) {
            let text: &[u8] = if rsv1 {
                if !mode.per_connection {
                    window.reset(false);
                }
                out.clear();
                inflate(&mut window, payload, &mut out);
                &out
            } else {
                payload
            };
            let events = text
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"{\"event\":\""))
                .count();
            counts.events.fetch_add(events as u64, Ordering::Relaxed);
            counts.messages.fetch_add(1, Ordering::Relaxed);
            at += len;
        }
        buf.drain(..at);
    }
}

/// A whole server frame at the start of `b`: RSV1, payload, length.
fn frame(b: &[u8]) -> Option<(bool, &[u8], usize)> {
    let (b0, b1) = (*b.first()?, *b.get(1)?);
    let (at, len) = match b1 & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    let payload = b.get(at..at + len)?;
    Some((b0 & 0x40 != 0, payload, at + len))
}

fn inflate(d: &mut Decompress, data: &[u8], out: &mut Vec<u8>) {
    for input in [data, &[0, 0, 0xff, 0xff][..]] {
        let mut rest = input;
        loop {
            out.reserve(64 * 1024);
            let before = d.total_in();
            d.decompress_vec(rest, out, FlushDecompress::Sync)
                .expect("inflates");
            rest = &rest[(d.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
    }
}

fn run(mode: Mode, subs: usize, rate: u32, secs: u64) {
    let cfg = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(2)
        .max_connections(subs + 16)
        .deflate_per_connection(mode.per_connection, 1 << 30);
    let server = Server::start(cfg).unwrap();
    let demo = tickcast::daemon::demo::DemoFeed::start(server.publisher(), rate);
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<Counts>> = (0..subs).map(|_| Arc::default()).collect();
    let threads: Vec<_> = counts
        .iter()
        .map(|c| {
            let (c, stop, addr) = (c.clone(), stop.clone(), server.local_addr());
            std::thread::spawn(move || subscriber(addr, mode, c, stop))
        })
        .collect();
    // Snapshots and the first round behind us.
    std::thread::sleep(Duration::from_secs(2));
    let total = |f: fn(&Counts) -> &AtomicU64| {
        counts
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (w0, e0, m0) = (
        total(|c| &c.wire),
        total(|c| &c.events),
        total(|c| &c.messages),
    );
    let cpu0 = thread_cpu(&["tickcast-shard", "tickcast-route"]);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = thread_cpu(&["tickcast-shard", "tickcast-route"]) - cpu0;
    let dt = t0.elapsed().as_secs_f64();
    let (wire, events, messages) = (
        total(|c| &c.wire) - w0,
        total(|c| &c.events) - e0,
        total(|c| &c.messages) - m0,
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    drop(demo);
    let per_sub = events as f64 / subs as f64 / dt;
    println!(
        "{:<26} {:>10.0} {:>10.1} {:>12.1} {:>14.2} {:>10.0}",
        mode.name,
        per_sub,
        events as f64 / messages.max(1) as f64,
        wire as f64 / events.max(1) as f64,
        cpu * 1e6 / events.max(1) as f64,
        wire as f64 / subs as f64 / dt / 1e3,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let subs = arg("--subs", 100) as usize;
    let rate = arg("--rate", 2000) as u32;
    let secs = arg("--secs", 8);
    println!(
        "demo feed at {rate} updates/s, {subs} subscribers of *, {secs} s per mode (server: 2 shards)"
    );
    println!(
        "{:<26} {:>10} {:>10} {:>12} {:>14} {:>10}",
        "mode", "events/s", "ev/msg", "bytes/event", "CPU us/event", "kB/s/sub"
    );
    for mode in MODES {
        run(mode, subs, rate, secs);
    }
}
