//! Soak: the attacks of issue 15 together, for minutes, against one
//! `tickcastd` process, while a keeping-up subscriber checks that it sees
//! every update in order and measures its longest silence.
//!
//! `benches/soak.sh` builds and runs it. Every 10 s and at the end it prints
//! the daemon's RSS and CPU, the sum of its /metrics memory estimate, what
//! /metrics says connections hold, how many connections were closed and
//! refused, and the keeper's gaps and longest silence. Exits 1 if the keeper
//! saw a gap or was closed.
//!
//! Attackers, each on its own thread (at niceness `--attacker-nice`,
//! default 10), each reconnecting when closed:
//! - non-readers that subscribe to everything and never read (tiny receive
//!   buffers), some of them pinging as fast as they can;
//! - a client sending 1,024-topic unsubscribe commands without pause;
//! - readers of everything that unsubscribe, subscribe again at once, and
//!   leave without a close frame, over and over (each a 20,000-topic
//!   withdrawal);
//! - a network publisher sending new topics (past `max_topics`) and updates
//!   with no field, mixed with good ones;
//! - a client opening and holding idle connections to the descriptor limit
//!   (the daemon runs under `ulimit -n`).

mod cli_args;
mod proc_stat;

use cli_args::arg;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::publish;
use tickcast::{RemoteConfig, RemotePublisher, Update};
use tungstenite::{Message, WebSocket};

const TOKEN: &str = "soak-publisher-token";
const TOPICS: usize = 20_000;

/// The daemon, killed when this ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(nofile: u64) -> (Daemon, SocketAddr) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("tickcastd");
    let dir = std::env::temp_dir().join(format!("tickcast-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("soak.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nlog_level = \"info\"\n\
             [limits]\nmax_topics = {}\nmax_outbound_bytes = 4194304\n\
             max_total_outbound_bytes = 67108864\nsocket_send_buffer = 65536\n\
             [auth]\npublisher_tokens = [\"{TOKEN}\"]\n",
            TOPICS + 1_000
        ),
    )
    .unwrap();
    let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("daemon exited").unwrap();
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let a: Vec<&str> = rest.split(':').take(2).collect();
            break a.join(":").parse().unwrap();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("SLOWTURN") {
                eprintln!("{l}");
            }
        }
    });
    (Daemon(child), addr)
}

fn ws(addr: SocketAddr, rcvbuf: Option<usize>) -> Option<WebSocket<TcpStream>> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).ok()?;
    }
    sock.connect(&addr.into()).ok()?;
    let stream: TcpStream = sock.into();
    stream.set_nodelay(true).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tungstenite::client(format!("ws://{addr}/ws"), stream)
        .ok()
        .map(|(w, _)| w)
}

/// /proc numbers of a process: RSS in bytes, CPU seconds (user + system).
fn proc_stats(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (rss_kb * 1024, proc_stat::cpu_seconds(pid))
}

/// The /metrics page; retried for a few seconds, since while the idle
/// attacker holds every descriptor the daemon can only answer 503.
fn metrics(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let give_up = Instant::now() + Duration::from_secs(4);
    loop {
        let mut out = String::new();
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            let _ = s.read_to_string(&mut out);
        }
        if out.starts_with("HTTP/1.1 200") || Instant::now() > give_up {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sample(page: &str, key: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// An attacker's thread, at the niceness `--attacker-nice` (default 10):
/// on a shared 2-core box the attackers' own threads would otherwise take
/// the server's CPU, and their preemption of it, not its work, set the
/// keeper's silences; in production they run on other machines. The feed
/// and the keeper run at the default priority.
fn attacker(nice: i32, body: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // SAFETY: setpriority on this thread (who = 0) only changes its niceness.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, nice);
        }
        body()
    })
}

#[derive(Default)]
struct Keeper {
    events: AtomicU64,
    gaps: AtomicU64,
    longest_ms: AtomicU64,
    /// The longest an update took from the feed's call to the keeper (its
    /// `ts` to its arrival): the server's share of a silence, whatever the
    /// load generator's own threads did meanwhile.
    worst_delay_ms: AtomicU64,
    closed: AtomicBool,
    /// The feed thread's longest pause between two rounds: a silence the
    /// keeper sees that is this long was the load generator's, not the
    /// server's.
    feed_stall_ms: AtomicU64,
    /// The longest one round of the feed's `publish` calls took: a stall
    /// this long was the publisher's queue full, i.e. the server not
    /// reading `/publish`, rather than the feed thread waiting for a core.
    feed_blocked_ms: AtomicU64,
    /// The same four, over the last report's window only (taken and reset
    /// at each report), so a spike in the ramp does not hide the rest.
    window: [AtomicU64; 4],
}

impl Keeper {
    /// Records `v` in the run's maximum `total` and in the window's `w`-th.
    fn note(&self, total: &AtomicU64, w: usize, v: u64) {
        total.fetch_max(v, Ordering::Relaxed);
        self.window[w].fetch_max(v, Ordering::Relaxed);
    }
}

fn main() {
    let minutes: u64 = arg("--minutes", 3);
    let nice: i32 = arg("--attacker-nice", 10);
    let (daemon, addr) = start_daemon(arg("--nofile", 1024));
    let pid = daemon.0.id();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();

    // The feed: every topic once, then a steady stream, and the keeper's
    // topic every millisecond.
    let feed = RemotePublisher::connect(RemoteConfig::new(format!("ws://{addr}/publish"), TOKEN))
        .expect("publisher connects");
    for i in 0..TOPICS {
        feed.publish(Update::new(format!("S.{i:05}")).bid(1.0).ask(2.0))
            .unwrap();
    }
    feed.flush(Duration::from_secs(30)).unwrap();
    let keeper = Arc::new(Keeper::default());
    {
        let (feed, stop, k) = (feed.clone(), stop.clone(), keeper.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                let pause = (now - last).as_millis() as u64;
                k.note(&k.feed_stall_ms, 2, pause);
                last = now;
                i += 1;
                let _ = feed.publish(Update::new("KEEP").bid(i as f64));
                for j in 0..20 {
                    let t = (i as usize * 20 + j) % TOPICS;
                    let _ = feed.publish(Update::new(format!("S.{t:05}")).bid(i as f64));
                }
                k.note(&k.feed_blocked_ms, 3, now.elapsed().as_millis() as u64);
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }

    // The keeper.
    {
        let (k, stop) = (keeper.clone(), stop.clone());
        let mut w = ws(addr, None).expect("keeper connects");
        w.send(Message::text(r#"{"op":"subscribe","topics":["KEEP"]}"#))
            .unwrap();
        threads.push(std::thread::spawn(move || {
            let mut last_seq = 0u64;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match w.read() {
                    Ok(Message::Text(t)) => {
                        let now = Instant::now();
                        let gap = (now - last).as_millis() as u64;
                        k.note(&k.longest_ms, 0, gap);
                        last = now;
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        if let Some(ts) = v["ts"].as_u64() {
                            let delay = tickcast::now_ns().saturating_sub(ts) / 1_000_000;
                            k.note(&k.worst_delay_ms, 1, delay);
                        }
                        if let Some(seq) = v["seq"].as_u64() {
                            if last_seq > 0 && seq != last_seq + 1 {
                                k.gaps.fetch_add(1, Ordering::Relaxed);
                            }
                            last_seq = seq;
                            k.events.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        k.closed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }

    // Non-readers of everything, half of them pinging without pause.
    for n in 0..40 {
        let stop = stop.clone();
        threads.push(attacker(nice, move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(mut w) = ws(addr, Some(4096)) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let _ = w.send(Message::text(r#"{"op":"subscribe","topics":["*"]}"#));
                let _ = w.get_ref().set_nonblocking(true);
                let until = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    if n % 2 == 0 {
                        if let Err(tungstenite::Error::Io(e)) =
                            w.send(Message::Ping(vec![0; 64].into()))
                        {
                            if e.kind() != std::io::ErrorKind::WouldBlock {
                                break;
                            }
                            let _ = w.flush();
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }));
    }

    // Big unsubscribe commands, read back so they keep coming.
    {
        let stop = stop.clone();
        threads.push(attacker(nice, move || {
            let topics: Vec<String> = (0..1024).map(|i| format!("NOPE.{i:040}")).collect();
            let cmd = serde_json::json!({"op": "unsubscribe", "topics": topics}).to_string();
            while !stop.load(Ordering::Relaxed) {
                let Some(mut w) = ws(addr, None) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    if w.send(Message::text(cmd.clone())).is_err() || w.read().is_err() {
                        break;
                    }
                }
            }
        }));
    }

    // Readers of everything that take all snapshots, then unsubscribe and
    // subscribe again in one go, then leave without a close frame.
    for _ in 0..2 {
        let stop = stop.clone();
        threads.push(attacker(nice, move || {
            let all = r#"{"op":"subscribe","topics":["*"]}"#;
            let none = r#"{"op":"unsubscribe","topics":["*"]}"#;
            while !stop.load(Ordering::Relaxed) {
                let Some(mut w) = ws(addr, None) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let _ = w.get_ref().set_read_timeout(Some(Duration::from_secs(2)));
                for _ in 0..3 {
                    let _ = w.send(Message::text(all));
                    let mut snapshots = 0;
                    while snapshots < TOPICS && !stop.load(Ordering::Relaxed) {
                        match w.read() {
                            Ok(Message::Text(t)) if t.contains(r#""event":"snapshot""#) => {
                                snapshots += 1
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    let _ = w.send(Message::text(none));
                }
                // Dropped: the socket closes with no close frame.
            }
        }));
    }

    // A publisher of new topics past max_topics and of empty updates.
    {
        let stop = stop.clone();
        threads.push(attacker(nice, move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let stream = TcpStream::connect(addr).unwrap();
                let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
                    "ws://{addr}/publish"
                ))
                .unwrap();
                req.headers_mut()
                    .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
                let Ok((mut w, _)) = tungstenite::client(req, stream) else {
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let batch: Vec<Update> = (0..64)
                        .map(|k| match k % 3 {
                            0 => Update::new(format!("NEW.{i}.{k}")).bid(1.0),
                            1 => Update::new(format!("S.{:05}", (i as usize + k) % TOPICS)),
                            _ => Update::new(format!("S.{:05}", k)).ask(i as f64),
                        })
                        .collect();
                    if w.send(Message::binary(publish::encode(&batch))).is_err() {
                        break;
                    }
                    let _ = w.read();
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }));
    }

    // Idle connections to the descriptor limit, let go and taken again.
    {
        let stop = stop.clone();
        threads.push(attacker(nice, move || {
            while !stop.load(Ordering::Relaxed) {
                let mut held = Vec::new();
                for _ in 0..1500 {
                    if let Ok(s) = TcpStream::connect(addr) {
                        held.push(s);
                    }
                }
                std::thread::sleep(Duration::from_secs(3));
                drop(held);
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }

    let start = Instant::now();
    let (_, cpu0) = proc_stats(pid);
    let end = start + Duration::from_secs(minutes * 60);
    let mut peak_rss = 0;
    let report = |label: &str, peak_rss: &mut u64| {
        let (rss, cpu) = proc_stats(pid);
        *peak_rss = (*peak_rss).max(rss);
        let page = metrics(addr);
        let secs = start.elapsed().as_secs_f64();
        let estimated: f64 = page
            .lines()
            .filter(|l| l.starts_with("tickcast_memory_estimated_bytes{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        println!(
            "{label} t={secs:5.0}s rss={:6.1}MB peak={:6.1}MB estimated={:6.1}MB cpu={:4.0}% held={:6.1}MB \
             conns={} slow_closed={} fd_503={} publish_refused={} keeper: events={} gaps={} longest_silence={}ms worst_delay={}ms feed_stall={}ms feed_blocked={}ms \
             window: silence={}ms delay={}ms stall={}ms blocked={}ms",
            rss as f64 / 1e6,
            *peak_rss as f64 / 1e6,
            estimated / 1e6,
            100.0 * (cpu - cpu0) / secs.max(1.0),
            sample(&page, "tickcast_outbound_queued_bytes") / 1e6,
            sample(&page, "tickcast_connections"),
            sample(&page, "tickcast_connections_closed_total{reason=\"slow_consumer\"}"),
            sample(&page, "tickcast_connections_refused_fd_limit_total"),
            sample(&page, "tickcast_publish_refused_total"),
            keeper.events.load(Ordering::Relaxed),
            keeper.gaps.load(Ordering::Relaxed),
            keeper.longest_ms.load(Ordering::Relaxed),
            keeper.worst_delay_ms.load(Ordering::Relaxed),
            keeper.feed_stall_ms.load(Ordering::Relaxed),
            keeper.feed_blocked_ms.load(Ordering::Relaxed),
            keeper.window[0].swap(0, Ordering::Relaxed),
            keeper.window[1].swap(0, Ordering::Relaxed),
            keeper.window[2].swap(0, Ordering::Relaxed),
            keeper.window[3].swap(0, Ordering::Relaxed),
        );
    };
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(10).min(end - Instant::now()));
        report("     ", &mut peak_rss);
    }
    report("final", &mut peak_rss);
    stop.store(true, Ordering::Relaxed);
    let failed = keeper.gaps.load(Ordering::Relaxed) > 0 || keeper.closed.load(Ordering::Relaxed);
    drop(daemon);
    std::process::exit(i32::from(failed));
}
