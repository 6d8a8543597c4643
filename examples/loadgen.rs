//! Fan-out load generator: many WebSocket subscribers on one mio event loop.
//!
//! Independent of tickcast's server code (it speaks the wire protocol from
//! scratch), so the same binary measures tickcast and the peer servers in
//! benches/peers/. Each connection subscribes to `--per-conn` of `--topics`
//! topics (spread evenly), then every `update` event is counted and its
//! publish-to-receive latency taken from the `ts` field (ns since the epoch,
//! stamped with the publisher's *scheduled* time, so a server that falls
//! behind shows growing latency). The generator never talks back, so the load
//! is open-loop: only TCP back-pressure can slow the server down.
//!
//! ```text
//! loadgen --addr 127.0.0.1:9000 --conns 1000 --topics 100 --per-conn 10 \
//!         --warmup 2 --duration 5 [--sources 4] [--hold] [--max-rate 10]
//! ```
//! `--proto nats` speaks NATS's text protocol over WebSocket instead
//! (`CONNECT`, one `SUB` per topic, `PING`; `MSG` payloads are the same JSON
//! events, so latency is taken the same way), for nats-server as a peer.
//! A connection the server closes while streaming is counted in `dropped`
//! (NATS closes slow consumers; tickcast and the Node peers never should).
//! `--max-rate R` adds `"max_rate": R` to every subscribe (tickcast only);
//! `--suffix .book --depth D` subscribes to order-book topics at depth D and
//! counts `book_update` events instead (tickcast only).
//! `--server-pids P[,P...]` adds `server_cpu_pct`: the CPU those processes
//! used (user + system, % of one core) over the measured window only, so
//! connection setup and warm-up, which take longer at 10,000 connections and
//! differ between servers, do not dilute it.
//! Prints one JSON line. `--hold` only connects, subscribes, prints `READY`,
//! and stays idle for `--duration` seconds (for memory per idle connection).

mod proc_stat;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    addr: SocketAddr,
    conns: usize,
    topics: usize,
    per_conn: usize,
    prefix: String,
    warmup: f64,
    duration: f64,
    sources: u8,
    hold: bool,
    max_rate: Option<f64>,
    suffix: String,
    depth: Option<usize>,
    nats: bool,
    /// Offer permessage-deflate and inflate what comes compressed (tickcast
    /// and the peers only).
    deflate: bool,
    /// Processes whose CPU over the measured window is reported.
    server_pids: Vec<u32>,
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:9000".parse().unwrap(),
        conns: 1000,
        topics: 100,
        per_conn: 10,
        prefix: "B.".into(),
        warmup: 2.0,
        duration: 5.0,
        sources: 4,
        hold: false,
        max_rate: None,
        suffix: String::new(),
        depth: None,
        nats: false,
        deflate: false,
        server_pids: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = val().parse().expect("--addr host:port"),
            "--conns" => a.conns = val().parse().unwrap(),
            "--topics" => a.topics = val().parse().unwrap(),
            "--per-conn" => a.per_conn = val().parse().unwrap(),
            "--prefix" => a.prefix = val(),
            "--warmup" => a.warmup = val().parse().unwrap(),
            "--duration" => a.duration = val().parse().unwrap(),
            "--sources" => a.sources = val().parse().unwrap(),
            "--hold" => a.hold = true,
            "--deflate" => a.deflate = true,
            "--server-pids" => {
                a.server_pids = val()
                    .split(',')
                    .map(|p| p.parse().expect("--server-pids P[,P...]"))
                    .collect()
            }
            "--max-rate" => a.max_rate = Some(val().parse().expect("--max-rate events/s")),
            "--suffix" => a.suffix = val(),
            "--depth" => a.depth = Some(val().parse().expect("--depth levels")),
            "--proto" => match val().as_str() {
                "nats" => a.nats = true,
                "tickcast" => a.nats = false,
                other => panic!("--proto tickcast|nats, not {other}"),
            },
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

enum State {
    Connecting,
    Upgrading,
    Streaming,
    /// The server closed it after the upgrade (counted in `dropped`).
    Closed,
}

struct Conn {
    sock: TcpStream,
    state: State,
    /// Unparsed bytes (a partial frame, or the HTTP response head).
    buf: Vec<u8>,
    subscribe: Vec<u8>,
    /// NATS only: the protocol byte stream carried by the frames so far
    /// (NATS may split one `MSG` over two frames).
    stream: Vec<u8>,
    /// `--deflate`: the inflater, and whether the server keeps its window
    /// across messages (then so does this one).
    inflater: Option<(flate2::Decompress, bool)>,
}

/// CPU time (user + system) the processes used so far, in seconds; a process
/// that is gone counts nothing.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|&pid| proc_stat::cpu_seconds(pid)).sum()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A masked client frame, text (0x81) or binary (0x82); clients must mask,
/// and the mask may be constant.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![opcode];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn connect(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

fn libc_einprogress() -> i32 {
    115 // EINPROGRESS on Linux
}

#[derive(Default)]
struct Tally {
    updates: u64,
    bytes: u64,
}

/// Calls `on_frame(frame_len, first byte, payload)` for each complete frame
/// at the front of `buf`; returns the bytes consumed.
fn parse_frames(buf: &[u8], mut on_frame: impl FnMut(usize, u8, &[u8])) -> usize {
    let mut pos = 0;
    loop {
        let b = &buf[pos..];
        if b.len() < 2 {
            return pos;
        }
        let (len, hdr) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return pos,
            n => (n as usize, 2),
        };
        if b.len() < hdr + len {
            return pos;
        }
        on_frame(hdr + len, b[0], &b[hdr..hdr + len]);
        pos += hdr + len;
    }
}

/// Counts one update event and records its latency while measuring.
fn count_update(
    payload: &[u8],
    wire_len: usize,
    measuring: bool,
    tally: &mut Tally,
    hist: &mut Histogram<u64>,
) {
    tally.updates += 1;
    tally.bytes += wire_len as u64;
    if measuring {
        if let Some(ts) = field_u64(payload, b"\"ts\":") {
            let lat_us = now_ns().saturating_sub(ts) / 1000;
            let _ = hist.record(lat_us.max(1));
        }
    }
}

/// One tickcast frame: an `update` or `book_update` event is counted.
fn on_tickcast_frame(
    frame_len: usize,
    payload: &[u8],
    measuring: bool,
    tally: &mut Tally,
    hist: &mut Histogram<u64>,
) {
    if payload.starts_with(b"{\"event\":\"update\"")
        || payload.starts_with(b"{\"event\":\"book_update\"")
    {
        count_update(payload, frame_len, measuring, tally, hist);
    }
}

/// Inflates one permessage-deflate message (RFC 7692 §7.2.2) into `out`.
fn inflate(d: &mut flate2::Decompress, data: &[u8], out: &mut Vec<u8>) {
    for input in [data, &[0, 0, 0xff, 0xff][..]] {
        let mut rest = input;
        loop {
            out.reserve(4096);
            let before = d.total_in();
            d.decompress_vec(rest, out, flate2::FlushDecompress::Sync)
                .expect("the server's compressed message inflates");
            rest = &rest[(d.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
    }
}

/// Parses complete NATS protocol operations at the front of `stream`
/// (`MSG <subject> <sid> [reply] <bytes>\r\n<payload>\r\n`, `PING`, `PONG`,
/// `INFO`, `+OK`, `-ERR`); returns (bytes consumed, PINGs to answer).
fn parse_nats(
    stream: &[u8],
    measuring: bool,
    tally: &mut Tally,
    hist: &mut Histogram<u64>,
) -> (usize, usize) {
    let mut pos = 0;
    let mut pings = 0;
    while let Some(eol) = stream[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &stream[pos..pos + eol];
        if line.starts_with(b"MSG ") {
            let n: usize = std::str::from_utf8(line.rsplit(|&c| c == b' ').next().unwrap())
                .ok()
                .and_then(|t| t.parse().ok())
                .expect("MSG byte count");
            let start = pos + eol + 2;
            if stream.len() < start + n + 2 {
                break;
            }
            // Bytes are counted per frame for NATS (a frame carries many MSGs).
            count_update(&stream[start..start + n], 0, measuring, tally, hist);
            pos = start + n + 2;
            continue;
        }
        if line == b"PING" {
            pings += 1;
        } else if line.starts_with(b"-ERR") {
            eprintln!("nats: {}", String::from_utf8_lossy(line));
        }
        pos += eol + 2;
    }
    (pos, pings)
}

fn field_u64(payload: &[u8], key: &[u8]) -> Option<u64> {
    let at = payload.windows(key.len()).position(|w| w == key)? + key.len();
    let mut v: u64 = 0;
    let mut any = false;
    for &c in &payload[at..] {
        if c.is_ascii_digit() {
            v = v * 10 + (c - b'0') as u64;
            any = true;
        } else {
            break;
        }
    }
    any.then_some(v)
}

/// A connection the server closed: before the upgrade completed that is a
/// failed run; after it, a dropped subscriber (NATS's slow-consumer policy).
fn closed(c: &mut Conn, poll: &Poll, dropped: &mut usize) {
    assert!(
        matches!(c.state, State::Streaming),
        "server closed a connection before it was subscribed"
    );
    let _ = poll.registry().deregister(&mut c.sock);
    c.state = State::Closed;
    *dropped += 1;
}

/// Bytes read from a subscribed connection: frames are parsed straight from
/// the read buffer when nothing is pending. For NATS, frame payloads are
/// appended to the protocol stream, whose complete operations are parsed and
/// whose PINGs are answered (the server would close a silent client).
fn on_stream_data(
    c: &mut Conn,
    data: &[u8],
    nats: bool,
    measuring: bool,
    tally: &mut Tally,
    hist: &mut Histogram<u64>,
) {
    let stream = &mut c.stream;
    let inflater = &mut c.inflater;
    let mut inflated = Vec::new();
    let mut on_frame = |len: usize, b0: u8, payload: &[u8]| {
        let opcode = b0 & 0x0f;
        if b0 & 0x40 != 0 {
            // Without context takeover a message never refers to earlier
            // ones, so one inflater reads every message without a reset
            // (which would cost a clear of its 32 KiB window each time).
            let (d, _keeps) = inflater
                .as_mut()
                .expect("RSV1 only after permessage-deflate");
            inflated.clear();
            inflate(d, payload, &mut inflated);
            on_tickcast_frame(len, &inflated, measuring, tally, hist);
        } else if !nats {
            on_tickcast_frame(len, payload, measuring, tally, hist);
        } else if opcode < 0x8 {
            tally.bytes += len as u64;
            stream.extend_from_slice(payload);
        }
    };
    if c.buf.is_empty() {
        let used = parse_frames(data, &mut on_frame);
        c.buf.extend_from_slice(&data[used..]);
    } else {
        c.buf.extend_from_slice(data);
        let used = parse_frames(&c.buf, &mut on_frame);
        c.buf.drain(..used);
    }
    if nats && !c.stream.is_empty() {
        let (used, pings) = parse_nats(&c.stream, measuring, tally, hist);
        c.stream.drain(..used);
        for _ in 0..pings {
            let _ = c.sock.write_all(&client_frame(0x82, b"PONG\r\n"));
        }
    }
}

fn main() {
    let a = parse_args();
    let mut poll = Poll::new().unwrap();
    let mut conns: Vec<Conn> = Vec::with_capacity(a.conns);
    // Connections are opened in waves (at most this many handshakes in flight)
    // so no server's listen backlog overflows and resets them.
    const IN_FLIGHT: usize = 128;
    let open_one = |i: usize, poll: &Poll| -> Conn {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % a.sources.max(1) as usize) as u8,
        ));
        let mut sock = connect(a.addr, source).expect("connect");
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        let topics: Vec<String> = (0..a.per_conn)
            .map(|k| {
                let n = (i * a.per_conn + k) % a.topics;
                format!("\"{}{n:04}{}\"", a.prefix, a.suffix)
            })
            .collect();
        let subscribe = if a.nats {
            let mut cmd =
                String::from("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n");
            for (k, t) in topics.iter().enumerate() {
                cmd.push_str(&format!("SUB {} {}\r\n", t.trim_matches('"'), k + 1));
            }
            cmd.push_str("PING\r\n");
            client_frame(0x82, cmd.as_bytes())
        } else {
            let mut rate = a
                .max_rate
                .map_or(String::new(), |r| format!(",\"max_rate\":{r}"));
            if let Some(d) = a.depth {
                rate.push_str(&format!(",\"depth\":{d}"));
            }
            let cmd = format!(
                "{{\"op\":\"subscribe\",\"id\":1,\"topics\":[{}]{rate}}}",
                topics.join(",")
            );
            client_frame(0x81, cmd.as_bytes())
        };
        Conn {
            sock,
            state: State::Connecting,
            buf: Vec::new(),
            subscribe,
            stream: Vec::new(),
            inflater: None,
        }
    };

    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 256 * 1024];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut tally = Tally::default();
    let mut streaming = 0usize;
    let mut dropped = 0usize;
    let start = Instant::now();
    let mut measure_start: Option<Instant> = None;
    let mut cpu_at_start = 0.0;
    let mut measuring = false;
    let mut ready_at: Option<Instant> = None;
    // nats-server serves WebSocket on any path; tickcast and the peers on /ws.
    let path = if a.nats { "/" } else { "/ws" };
    let ext = match a.deflate {
        true => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        false => "",
    };
    let request_for = |addr: SocketAddr| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        )
    };
    let request = request_for(a.addr);

    loop {
        while conns.len() < a.conns && conns.len() - streaming < IN_FLIGHT {
            let c = open_one(conns.len(), &poll);
            conns.push(c);
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if matches!(c.state, State::Closed) {
                continue;
            }
            if matches!(c.state, State::Connecting) && ev.is_writable() {
                if let Ok(Some(e)) = c.sock.take_error() {
                    panic!("connect failed: {e}");
                }
                c.sock
                    .write_all(request.as_bytes())
                    .expect("write upgrade request");
                c.state = State::Upgrading;
            }
            if !ev.is_readable() {
                continue;
            }
            loop {
                match c.sock.read(&mut scratch) {
                    Ok(0) => {
                        closed(c, &poll, &mut dropped);
                        break;
                    }
                    Ok(n) => {
                        let data = &scratch[..n];
                        match c.state {
                            State::Upgrading => {
                                c.buf.extend_from_slice(data);
                                if let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                    assert!(c.buf.starts_with(b"HTTP/1.1 101"), "upgrade refused");
                                    let head =
                                        String::from_utf8_lossy(&c.buf[..end]).to_lowercase();
                                    if head.contains("permessage-deflate") {
                                        let keeps = !head.contains("server_no_context_takeover");
                                        c.inflater = Some((flate2::Decompress::new(false), keeps));
                                    }
                                    c.buf.drain(..end + 4);
                                    c.sock.write_all(&c.subscribe).expect("subscribe");
                                    c.state = State::Streaming;
                                    streaming += 1;
                                }
                            }
                            State::Streaming => {
                                on_stream_data(c, data, a.nats, measuring, &mut tally, &mut hist)
                            }
                            State::Connecting | State::Closed => {}
                        }
                        // A read that did not fill the buffer emptied the
                        // socket: on Linux, data that arrives later raises a
                        // new edge-triggered event, so a second read would
                        // only return WouldBlock. Skipping it saves a system
                        // call per read (at 10,000 subscribers and 1M frames/s
                        // the load generator's core went from 61-62% busy to
                        // 56-59%), the same for every server measured.
                        if n < scratch.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        closed(c, &poll, &mut dropped);
                        break;
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        let now = Instant::now();
        if ready_at.is_none() && streaming == a.conns {
            ready_at = Some(now);
            if a.hold {
                println!("READY");
                let _ = io::stdout().flush();
            }
            // For drivers that start their feed once every subscriber is in
            // (benches/ingest.rs); stdout stays one JSON line.
            eprintln!("READY");
        }
        if ready_at.is_none() && now.duration_since(start) > Duration::from_secs(120) {
            panic!(
                "only {streaming} of {} connections upgraded in 120 s",
                a.conns
            );
        }
        let Some(ready) = ready_at else { continue };
        if a.hold {
            if now.duration_since(ready).as_secs_f64() >= a.duration {
                println!("{{\"conns\":{},\"held_s\":{}}}", a.conns, a.duration);
                return;
            }
            continue;
        }
        if !measuring && now.duration_since(ready).as_secs_f64() >= a.warmup {
            measuring = true;
            measure_start = Some(now);
            cpu_at_start = cpu_seconds(&a.server_pids);
            tally = Tally::default();
            hist.reset();
        }
        if let Some(ms) = measure_start {
            let secs = now.duration_since(ms).as_secs_f64();
            if secs >= a.duration {
                let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
                let cpu = (cpu_seconds(&a.server_pids) - cpu_at_start) / secs * 100.0;
                println!(
                    "{{\"conns\":{},\"server_cpu_pct\":{:.1},\"delivered_per_s\":{:.0},\"mb_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"samples\":{},\"dropped\":{}}}",
                    a.conns,
                    cpu,
                    tally.updates as f64 / secs,
                    tally.bytes as f64 / secs / 1e6,
                    q(0.5),
                    q(0.99),
                    q(0.999),
                    hist.max() as f64 / 1000.0,
                    hist.len(),
                    dropped
                );
                return;
            }
        }
    }
}
