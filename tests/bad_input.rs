//! Every kind of bad input gets its error event or close code, and the server
//! keeps serving everyone else.

mod common;

use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use tickcast::{Server, Update};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

/// A subscriber that must keep receiving every update while others misbehave.
struct Witness {
    client: Client,
    seq: u64,
}

impl Witness {
    fn new(server: &Server) -> Witness {
        let mut client = Client::connect(server.local_addr());
        client.subscribe(&["WIT"]);
        let mut w = Witness { client, seq: 0 };
        w.check(server);
        w
    }

    /// Publishes one update and insists the witness receives exactly it.
    fn check(&mut self, server: &Server) {
        server
            .publisher()
            .publish(Update::new("WIT").bid(self.seq as f64))
            .unwrap();
        self.seq += 1;
        let ev = self.client.next_event();
        assert_eq!(
            (ev["topic"].as_str(), ev["seq"].as_u64()),
            (Some("WIT"), Some(self.seq)),
            "{ev}"
        );
    }
}

fn error_of(c: &mut Client, cmd_text: &str) -> serde_json::Value {
    c.ws.send(Message::text(cmd_text)).unwrap();
    let ev = c.next_event();
    assert_eq!(ev["event"], "error", "{ev}");
    assert!(
        ev["message"].as_str().is_some_and(|m| !m.is_empty()),
        "readable message: {ev}"
    );
    ev
}

#[test]
fn bad_commands_get_error_events_and_the_connection_stays_usable() {
    let server = Server::start(config().max_subscriptions(3)).unwrap();
    let mut w = Witness::new(&server);
    let mut c = Client::connect(server.local_addr());

    assert_eq!(error_of(&mut c, "{not json")["code"], "bad_json");
    assert_eq!(error_of(&mut c, "[1,2]")["code"], "bad_request");
    let e = error_of(&mut c, r#"{"op":"teleport","id":7}"#);
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("unknown_op"), Some(7))
    );
    let e = error_of(&mut c, r#"{"op":"subscribe","id":8}"#);
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("bad_request"), Some(8))
    );
    let e = error_of(
        &mut c,
        r#"{"op":"subscribe","id":9,"topics":["has space"]}"#,
    );
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("bad_topic"), Some(9))
    );
    let long = "A".repeat(65);
    assert_eq!(
        error_of(
            &mut c,
            &json!({"op":"subscribe","topics":[long]}).to_string()
        )["code"],
        "bad_topic"
    );
    assert_eq!(
        error_of(&mut c, r#"{"op":"subscribe","topics":["F*X"]}"#)["code"],
        "bad_topic"
    );
    assert_eq!(
        error_of(&mut c, r#"{"op":"unsubscribe","topics":[""]}"#)["code"],
        "bad_topic"
    );
    w.check(&server);

    // The subscription limit counts exact topics and patterns; a refused
    // command subscribes to nothing.
    c.subscribe(&["A", "B"]);
    let e = error_of(&mut c, r#"{"op":"subscribe","id":10,"topics":["C","D.*"]}"#);
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("too_many_subscriptions"), Some(10))
    );
    server
        .publisher()
        .publish(Update::new("C").bid(1.0))
        .unwrap();
    c.subscribe(&["A", "D.*"]);
    // Still usable: a valid command after all the errors works.
    c.send(json!({"op":"ping","id":11}));
    assert_eq!(c.next_event()["event"], "pong");
    w.check(&server);
}

#[test]
fn a_command_with_an_unknown_key_is_refused_by_name_in_json_and_msgpack() {
    let server = Server::start(config()).unwrap();
    server
        .publisher()
        .publish(Update::new("UK").bid(1.0))
        .unwrap();
    // Held before anyone subscribes, so the first event is its snapshot.
    wait_until("a value", || server.snapshot("UK").is_some());
    for mut c in [
        Client::connect(server.local_addr()),
        Client::connect_msgpack(server.local_addr()),
    ] {
        // "maxRate" is a typo of "max_rate": refused, not ignored.
        c.send(json!({"op":"subscribe","id":3,"topics":["UK"],"maxRate":4}));
        let e = c.next_event();
        assert_eq!(
            (e["code"].as_str(), e["id"].as_u64()),
            (Some("bad_request"), Some(3)),
            "{e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("\"maxRate\"") && message.contains("max_rate"),
            "{message}"
        );
        // Nothing was subscribed, and the connection goes on.
        c.send(json!({"op":"subscribe","id":4,"topics":["UK"],"max_rate":4}));
        assert_eq!(c.next_event()["event"], "subscribed");
        let snap = c.next_event();
        assert_eq!(
            (snap["event"].as_str(), snap["topic"].as_str()),
            (Some("snapshot"), Some("UK"))
        );
    }
}

#[test]
fn oversized_message_closes_with_1009() {
    let server = Server::start(config().max_message_size(1024)).unwrap();
    let mut w = Witness::new(&server);
    let mut c = Client::connect(server.local_addr());
    let big = json!({"op":"subscribe","topics":["X".repeat(2000)]}).to_string();
    c.ws.send(Message::text(big)).unwrap();
    let (code, reason) = c.expect_close();
    assert_eq!(code, CloseCode::Size, "{reason}");
    w.check(&server);
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let server = server();
    let mut w = Witness::new(&server);
    let mut c = Client::connect(server.local_addr());
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    c.ws.send(Message::Frame(frame)).unwrap();
    assert_eq!(c.expect_close().0, CloseCode::Invalid);
    w.check(&server);
}

#[test]
fn binary_frame_on_a_json_connection_closes_with_1003() {
    let server = server();
    let mut w = Witness::new(&server);
    let mut c = Client::connect(server.local_addr());
    c.ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    let (code, reason) = c.expect_close();
    assert_eq!(code, CloseCode::Unsupported);
    assert!(reason.contains("msgpack"), "{reason}");
    w.check(&server);
}

#[test]
fn bad_msgpack_on_a_msgpack_connection_gets_an_error_event() {
    let server = server();
    let mut c = Client::connect_msgpack(server.local_addr());
    c.ws.send(Message::binary(vec![0xc1])).unwrap();
    assert_eq!(c.next_event()["code"], "bad_msgpack");
    // JSON text commands are accepted on msgpack connections too; replies stay msgpack.
    c.ws.send(Message::text(r#"{"op":"ping","id":1}"#)).unwrap();
    assert_eq!(c.next_event()["event"], "pong");
}

/// Performs the upgrade by hand and returns the raw socket.
fn raw_upgrade(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let server = server();
    let mut w = Witness::new(&server);
    let mut s = raw_upgrade(&server);
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let mut resp = [0u8; 4];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(resp[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([resp[2], resp[3]]), 1002);
    w.check(&server);
}

#[test]
fn garbage_instead_of_http_is_answered_400_and_closed() {
    let server = server();
    let mut w = Witness::new(&server);
    let resp = http_raw(server.local_addr(), b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = http_raw(server.local_addr(), &[0u8; 20_000]);
    assert!(
        resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.1 431"),
        "{resp}"
    );
    w.check(&server);
}

#[test]
fn plain_http_gets_real_status_codes() {
    let server = server();
    let addr = server.local_addr();
    assert!(http_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert!(http_raw(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http_raw(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 426"));
    let resp = http_raw(
        addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
    );
    assert!(
        resp.starts_with("HTTP/1.1 400") && resp.contains("tickcast.json"),
        "{resp}"
    );
}

#[test]
fn invalid_publishes_are_refused_to_the_publisher() {
    let server = server();
    let p = server.publisher();
    assert!(matches!(
        p.publish(Update::new("bad topic")),
        Err(tickcast::Error::InvalidTopic(_))
    ));
    assert!(matches!(
        p.publish(Update::new("")),
        Err(tickcast::Error::InvalidTopic(_))
    ));
    assert!(matches!(
        p.publish(Update::new("X").bid(f64::NAN)),
        Err(tickcast::Error::InvalidValue("bid"))
    ));
    assert!(matches!(
        p.publish_batch([Update::new("OK").bid(1.0), Update::new("B*D")]),
        Err(tickcast::Error::InvalidTopic(_))
    ));
    assert_eq!(server.topic_count(), 0, "a refused batch queues nothing");
}
