//! Heartbeats, handshake deadlines against slow senders, and the Origin allowlist.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tickcast::Server;

const UPGRADE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

#[test]
fn a_client_that_never_answers_pings_is_pinged_then_closed_with_1008() {
    let server =
        Server::start(config().heartbeat(Duration::from_millis(200), Duration::from_millis(700)))
            .unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(UPGRADE).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    // Read everything until the server closes; never answer.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let elapsed = start.elapsed();
    let body = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(body[0], 0x89, "a ping first: {body:?}");
    let close = body
        .windows(2)
        .position(|w| w[0] == 0x88)
        .expect("a close frame");
    let code = u16::from_be_bytes([body[close + 2], body[close + 3]]);
    assert_eq!(code, 1008);
    assert!(
        elapsed >= Duration::from_millis(600),
        "closed too early: {elapsed:?}"
    );
    wait_until("connection released", || server.connection_count() == 0);
}

#[test]
fn a_client_that_answers_pings_stays_connected_past_the_idle_timeout() {
    let server =
        Server::start(config().heartbeat(Duration::from_millis(100), Duration::from_millis(400)))
            .unwrap();
    let mut c = Client::connect(server.local_addr());
    let until = Instant::now() + Duration::from_millis(1500);
    // tungstenite answers each ping while we read.
    while Instant::now() < until {
        assert!(c.try_next_event(Duration::from_millis(50)).is_none());
    }
    c.subscribe(&["STILL.HERE"]);
    assert_eq!(server.connection_count(), 1);
}

#[test]
fn a_handshake_sent_one_byte_at_a_time_is_cut_off_at_the_deadline() {
    let server = Server::start(config().handshake_timeout(Duration::from_millis(800))).unwrap();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    let mut reply = Vec::new();
    for b in UPGRADE.iter().take(60) {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if reply.starts_with(b"HTTP/1.1 408") {
            break;
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    let t = start.elapsed();
    assert!(
        t >= Duration::from_millis(700) && t < Duration::from_secs(4),
        "{t:?}"
    );
}

#[test]
fn a_foreign_origin_is_refused_and_allowed_or_absent_origins_pass() {
    let server =
        Server::start(config().allowed_origins(vec!["https://dash.example.com".into()])).unwrap();
    let with_origin = |origin: Option<&str>| {
        let mut req = String::from_utf8(UPGRADE[..UPGRADE.len() - 2].to_vec()).unwrap();
        if let Some(o) = origin {
            req.push_str(&format!("Origin: {o}\r\n"));
        }
        req.push_str("\r\n");
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert_eq!(
        with_origin(Some("https://evil.example.net")),
        "HTTP/1.1 403"
    );
    assert_eq!(
        with_origin(Some("https://dash.example.com")),
        "HTTP/1.1 101"
    );
    assert_eq!(with_origin(None), "HTTP/1.1 101");
}
