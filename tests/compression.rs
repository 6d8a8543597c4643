//! permessage-deflate (RFC 7692) on real sockets, with a raw client that
//! writes and reads the frames itself: the offer and the answer, event
//! frames compressed once and shared, compressed commands, a deflate bomb,
//! RSV1 where it was not negotiated.

mod common;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tickcast::{Server, Update};

const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A frame as the raw client reads it.
#[derive(Debug)]
struct Frame {
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A client that speaks WebSocket byte by byte, offering `offer`.
struct Raw {
    s: TcpStream,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    answer: Option<String>,
    buf: Vec<u8>,
    /// The inflater kept from message to message when the server keeps
    /// its window (per-connection mode).
    window: Option<Decompress>,
}

impl Raw {
    fn connect(addr: SocketAddr, offer: Option<&str>) -> Raw {
        Raw::connect_as(addr, offer, None)
    }

    fn connect_as(addr: SocketAddr, offer: Option<&str>, protocol: Option<&str>) -> Raw {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ext = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        if let Some(p) = protocol {
            ext.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let answer = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
            .map(str::to_string);
        let window = answer
            .as_deref()
            .filter(|a| !a.contains("server_no_context_takeover"))
            .map(|_| Decompress::new(false));
        Raw {
            s,
            answer,
            buf: Vec::new(),
            window,
        }
    }

    /// Sends one masked frame with the first byte `b0` as given.
    fn send_raw(&mut self, b0: u8, payload: &[u8]) {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![b0];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        self.s.write_all(&f).unwrap();
    }

    /// Sends a text message compressed at `level`, as RFC 7692 §7.2.1 says.
    fn send_compressed(&mut self, text: &[u8], level: u32) {
        let body = compress(text, level);
        self.send_raw(0x80 | 0x40 | 0x1, &body);
    }

    fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.parse() {
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (at, len) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
            127 if b.len() >= 10 => (
                10,
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            ),
            126 | 127 => return None,
            n => (2, n as usize),
        };
        if b.len() < at + len {
            return None;
        }
        let f = Frame {
            rsv1: b[0] & 0x40 != 0,
            opcode: b[0] & 0x0f,
            payload: b[at..at + len].to_vec(),
        };
        assert!(b[0] & 0x80 != 0, "server frames are final");
        self.buf.drain(..at + len);
        Some(f)
    }

    /// The next text message as JSON, inflated if it came compressed.
    fn next_json(&mut self) -> (bool, Value) {
        let f = self.next_frame().expect("a frame");
        assert_eq!(f.opcode, 1, "{f:?}");
        let text = match (f.rsv1, &mut self.window) {
            (false, _) => f.payload,
            (true, Some(d)) => inflate_with(d, &f.payload),
            (true, None) => inflate(&f.payload),
        };
        (f.rsv1, serde_json::from_slice(&text).unwrap())
    }

    /// The next event of `topic`, skipping replies and other topics.
    fn next_of(&mut self, topic: &str) -> (bool, Value) {
        loop {
            let (rsv1, v) = self.next_json();
            if v["topic"] == topic {
                return (rsv1, v);
            }
        }
    }

    /// The close frame's code, skipping what comes before it.
    fn close_code(&mut self) -> u16 {
        while let Some(f) = self.next_frame() {
            if f.opcode == 8 {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
        panic!("no close frame")
    }
}

fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    loop {
        let before = c.total_in();
        out.reserve(4096);
        c.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
        rest = &rest[(c.total_in() - before) as usize..];
        if rest.is_empty() && out.capacity() > out.len() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    inflate_with(&mut Decompress::new(false), data)
}

/// Inflates one message with `d`, which keeps its window for the next.
fn inflate_with(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let start = d.total_in() as usize;
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(data.len() * 8 + 64);
    loop {
        let at = d.total_in() as usize - start;
        out.reserve(4096);
        d.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if d.total_in() as usize - start == input.len() && out.capacity() > out.len() {
            return out;
        }
    }
}

#[test]
fn offers_are_accepted_or_declined_as_rfc_7692_says() {
    let server = server();
    let addr = server.local_addr();
    // What Chromium, Firefox, Node's ws and Python's websockets offer.
    for offer in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate",
        "foo, permessage-deflate; server_max_window_bits=10, permessage-deflate",
    ] {
        let c = Raw::connect(addr, Some(offer));
        assert_eq!(c.answer.as_deref(), Some(ACCEPTED), "{offer}");
    }
    // An accepted server_max_window_bits is repeated (RFC 7692 §7.1.2.1).
    let offer = "permessage-deflate; server_max_window_bits=15; client_no_context_takeover";
    let c = Raw::connect(addr, Some(offer));
    let want = format!("{ACCEPTED}; server_max_window_bits=15");
    assert_eq!(c.answer.as_deref(), Some(want.as_str()));
    // Malformed or unsupported offers are declined: the session goes on
    // without compression.
    for offer in [
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9",
        "x-webkit-deflate-frame",
    ] {
        let c = Raw::connect(addr, Some(offer));
        assert_eq!(c.answer, None, "{offer}");
    }
    assert_eq!(Raw::connect(addr, None).answer, None);

    let off = Server::start(config().permessage_deflate(false)).unwrap();
    let c = Raw::connect(off.local_addr(), Some("permessage-deflate"));
    assert_eq!(c.answer, None, "compression off in the config");
}

const BIG: &str = "OPT.AAPL-2026-12-18-C-250";
const N: u64 = 20;

#[test]
fn large_events_arrive_compressed_once_for_every_subscriber_and_small_ones_plain() {
    let server = Server::start(config().shards(1).deflate_min_bytes(200)).unwrap();
    let addr = server.local_addr();
    let mut zipped: Vec<Raw> = (0..3)
        .map(|_| Raw::connect(addr, Some("permessage-deflate; client_max_window_bits")))
        .collect();
    let mut plain = Raw::connect(addr, None);
    for c in zipped.iter_mut().chain([&mut plain]) {
        c.send_raw(
            0x81,
            format!(r#"{{"op":"subscribe","topics":["{BIG}","SMALL"]}}"#).as_bytes(),
        );
    }
    wait_until("four subscribers", || {
        metric(&server, "tickcast_subscriptions") == 8.0
    });
    let p = server.publisher();
    for i in 0..N {
        let price = 100.123_456_789 + i as f64 / 8.0;
        // Every field set with many digits: an event of about 250 bytes.
        let u = Update::new(BIG)
            .bid(price)
            .ask(price + 0.25)
            .last(price + 0.125)
            .bid_size(1_234_567.891 + i as f64)
            .ask_size(7_654_321.123)
            .last_size(555.555_555)
            .volume(987_654_321.987 + i as f64);
        p.publish(u).unwrap();
        p.publish(Update::new("SMALL").bid(price)).unwrap();
    }
    let want_big: Vec<Value> = (0..N).map(|_| plain.next_of(BIG).1).collect();
    let big_len = serde_json::to_vec(&want_big[0]).unwrap().len();
    for c in &mut zipped {
        for want in &want_big {
            let (rsv1, got) = c.next_of(BIG);
            assert_eq!(&got, want, "inflates to the same event");
            assert_eq!(rsv1, big_len >= 200, "frames of {big_len} bytes");
        }
        let (rsv1, small) = c.next_of("SMALL");
        assert!(!rsv1, "a short frame goes plain: {small}");
    }
    assert!(big_len >= 200, "the test's event is {big_len} bytes");
    assert_eq!(metric(&server, "tickcast_deflate_sessions_total"), 3.0);
    // Shared: each event compressed once, not once per subscriber.
    assert_eq!(
        metric(&server, "tickcast_deflate_compressions_total"),
        N as f64
    );
    assert_eq!(
        metric(&server, "tickcast_deflated_frames_total"),
        3.0 * N as f64
    );
}

#[test]
fn compressed_commands_are_read_and_a_bomb_closes_with_1009_alone() {
    let server = Server::start(config().max_message_size(64 * 1024)).unwrap();
    let addr = server.local_addr();
    server
        .publisher()
        .publish(Update::new("A").bid(1.0))
        .unwrap();
    wait_until("A has a value", || server.snapshot("A").is_some());

    let mut good = Raw::connect(addr, Some("permessage-deflate"));
    good.send_compressed(br#"{"op":"subscribe","topics":["A"],"id":1}"#, 6);
    let (_, snap) = good.next_of("A");
    assert_eq!(snap["event"], "snapshot", "{snap}");

    // 10 MB of spaces compressed to a few kilobytes: inflating stops at the limit.
    let mut bomb = Raw::connect(addr, Some("permessage-deflate"));
    let mut text = b"{\"op\":\"subscribe\",\"topics\":[\"A\"]".to_vec();
    text.extend(std::iter::repeat_n(b' ', 10_000_000));
    text.push(b'}');
    let body = compress(&text, 9);
    assert!(body.len() < 20_000, "{}", body.len());
    bomb.send_raw(0xC1, &body);
    assert_eq!(bomb.close_code(), 1009);

    // Compressed bytes that do not inflate: 1007.
    let mut garbage = Raw::connect(addr, Some("permessage-deflate"));
    garbage.send_raw(0xC1, &[0xff; 16]);
    assert_eq!(garbage.close_code(), 1007);

    // The well-behaved client is still served.
    server
        .publisher()
        .publish(Update::new("A").bid(2.0))
        .unwrap();
    let (_, upd) = good.next_of("A");
    assert_eq!(upd["bid"], json!(2.0), "{upd}");
    drop((bomb, garbage));
    wait_until("only the good client is left", || {
        metric(&server, "tickcast_connections") == 1.0
    });
}

#[test]
fn rsv1_without_the_extension_and_on_a_continuation_close_with_1002() {
    let server = server();
    let addr = server.local_addr();
    let mut c = Raw::connect(addr, None);
    c.send_compressed(br#"{"op":"ping"}"#, 6);
    assert_eq!(c.close_code(), 1002);

    let mut c = Raw::connect(addr, Some("permessage-deflate"));
    let body = compress(br#"{"op":"subscribe","topics":["A"]}"#, 6);
    let (a, b) = body.split_at(body.len() / 2);
    c.send_raw(0x40 | 0x1, a);
    c.send_raw(0x80 | 0x40, b);
    assert_eq!(c.close_code(), 1002);

    // A compressed message in fragments is fine.
    let mut c = Raw::connect(addr, Some("permessage-deflate"));
    c.send_raw(0x40 | 0x1, a);
    c.send_raw(0x80, b);
    server
        .publisher()
        .publish(Update::new("A").bid(3.0))
        .unwrap();
    let (_, v) = c.next_of("A");
    assert_eq!(v["topic"], "A");
}

#[test]
fn a_book_snapshot_and_its_changes_arrive_compressed_and_equal_the_plain_ones() {
    use tickcast::Side;
    let server = Server::start(config().shards(1)).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    let mut book = Update::new("BTC-USD.book");
    for i in 0..200 {
        let off = i as f64 * 0.5;
        book = book
            .level(Side::Bid, 50_000.0 - off, 1.0 + i as f64 / 100.0)
            .level(Side::Ask, 50_000.5 + off, 2.0 + i as f64 / 100.0);
    }
    p.publish(book).unwrap();
    wait_until("the book is in", || {
        server.snapshot("BTC-USD.book").is_some()
    });
    let sub = br#"{"op":"subscribe","topics":["BTC-USD.book"],"depth":100}"#;
    let mut zipped = Raw::connect(addr, Some("permessage-deflate"));
    let mut plain = Raw::connect(addr, None);
    zipped.send_raw(0x81, sub);
    plain.send_raw(0x81, sub);
    let (rsv1, snap) = zipped.next_of("BTC-USD.book");
    assert!(rsv1, "a 100-level snapshot goes compressed");
    assert_eq!(snap, plain.next_of("BTC-USD.book").1);
    assert_eq!(snap["bids"].as_array().unwrap().len(), 100);
    for i in 0..5 {
        // Changes across the window: large book_update frames.
        let mut change = Update::new("BTC-USD.book");
        for j in 0..40 {
            change = change.level(Side::Bid, 50_000.0 - j as f64 * 0.5, 3.0 + i as f64);
        }
        p.publish(change).unwrap();
        let (rsv1, got) = zipped.next_of("BTC-USD.book");
        let want = plain.next_of("BTC-USD.book").1;
        assert_eq!(got, want);
        assert_eq!(got["event"], "book_update");
        assert!(rsv1, "a 40-level change goes compressed");
    }
}

#[test]
fn a_batch_session_with_deflate_gets_whole_batches_compressed() {
    let server = Server::start(config().shards(1)).unwrap();
    let addr = server.local_addr();
    let offer = Some("permessage-deflate; client_max_window_bits");
    let mut c = Raw::connect_as(addr, offer, Some("tickcast.json+batch"));
    assert_eq!(c.answer.as_deref(), Some(ACCEPTED));
    c.send_raw(0x81, br#"{"op":"subscribe","topics":["Z*"],"id":1}"#);
    let (_, ack) = c.next_json();
    assert_eq!(ack["event"], "subscribed", "{ack}");
    let p = server.publisher();
    for i in 1..=300u64 {
        for t in ["Z1", "Z2", "Z3"] {
            let px = 1000.0 + (i % 17) as f64 * 0.25;
            p.publish(Update::new(t).bid(px).ask(px + 0.5).volume(i as f64))
                .unwrap();
        }
    }
    let (mut wire, mut plain, mut compressed, mut events) = (0usize, 0usize, 0usize, 0usize);
    let mut last = std::collections::HashMap::new();
    while last.values().filter(|&&v| v == 300.0).count() < 3 {
        let f = c.next_frame().expect("a message");
        assert_eq!(f.opcode, 1);
        wire += f.payload.len();
        let text = if f.rsv1 {
            compressed += 1;
            inflate(&f.payload)
        } else {
            f.payload
        };
        plain += text.len();
        for line in text.split(|&b| b == b'\n') {
            let v: Value = serde_json::from_slice(line).unwrap();
            events += 1;
            if let Some(vol) = v["volume"].as_f64() {
                last.insert(v["topic"].as_str().unwrap().to_string(), vol);
            }
        }
    }
    assert!(compressed > 0, "batches went compressed");
    assert_eq!(events, 900, "every update, none merged");
    assert!(
        wire * 3 < plain,
        "{wire} bytes on the wire for {plain} bytes of JSON"
    );
    for t in ["Z1", "Z2", "Z3"] {
        assert_eq!(server.snapshot(t).unwrap().seq, 300);
    }
}

#[test]
fn per_connection_contexts_compress_even_small_events_within_their_memory_budget() {
    const PER_CONNECTION: &str = "permessage-deflate; client_no_context_takeover";
    // Room for two contexts of about 272 KiB.
    let cfg = config().shards(1).deflate_per_connection(true, 600 * 1024);
    let server = Server::start(cfg).unwrap();
    let addr = server.local_addr();
    let offer = Some("permessage-deflate; client_max_window_bits");
    let mut own = Raw::connect(addr, offer);
    let mut own_batched = Raw::connect_as(addr, offer, Some("tickcast.json+batch"));
    assert_eq!(own.answer.as_deref(), Some(PER_CONNECTION));
    assert_eq!(own_batched.answer.as_deref(), Some(PER_CONNECTION));
    // The budget is spent: the next one gets the shared mode, and so does
    // a client that asks the server not to keep a window.
    let shared = Raw::connect(addr, offer);
    assert_eq!(shared.answer.as_deref(), Some(ACCEPTED));
    let asked = Raw::connect(addr, Some("permessage-deflate; server_no_context_takeover"));
    assert_eq!(asked.answer.as_deref(), Some(ACCEPTED));
    drop((shared, asked));

    let mut plain = Raw::connect(addr, None);
    for c in [&mut own, &mut own_batched, &mut plain] {
        c.send_raw(0x81, br#"{"op":"subscribe","topics":["S*"]}"#);
    }
    wait_until("three subscribers", || {
        metric(&server, "tickcast_subscriptions") == 3.0
    });
    let p = server.publisher();
    for i in 0..200u64 {
        let px = 100.0 + (i % 13) as f64 * 0.01;
        p.publish(Update::new(format!("S{}", i % 5)).bid(px).ask(px + 0.01))
            .unwrap();
    }
    let mut small_compressed = 0;
    let mut plain_events = Vec::new();
    while plain_events.len() < 200 {
        let f = plain.next_frame().unwrap();
        let v: Value = serde_json::from_slice(&f.payload).unwrap();
        if v["event"] == "update" {
            plain_events.push(v);
        }
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        let (rsv1, v) = own.next_json();
        small_compressed += usize::from(rsv1);
        if v["event"] == "update" {
            got.push(v);
        }
    }
    assert_eq!(
        got, plain_events,
        "the same events, inflated through one window"
    );
    assert!(
        small_compressed >= 200,
        "every event compressed, short ones too"
    );
    // The batched one ends with the same last values.
    let mut last = std::collections::HashMap::new();
    while last.len() < 5 || last.values().any(|&s: &u64| s < 40) {
        let f = own_batched.next_frame().unwrap();
        assert!(f.rsv1, "batches go through its window");
        let d = own_batched.window.as_mut().unwrap();
        let text = inflate_with(d, &f.payload);
        for line in text.split(|&b| b == b'\n') {
            let v: Value = serde_json::from_slice(line).unwrap();
            if let (Some(t), Some(seq)) = (v["topic"].as_str(), v["seq"].as_u64()) {
                last.insert(t.to_string(), seq);
            }
        }
    }
    // Closing a per-connection client gives its context back.
    drop(own);
    wait_until("the context is free again", || {
        Raw::connect(addr, offer).answer.as_deref() == Some(PER_CONNECTION)
    });
}
