//! The echo server mode (examples/echo_server.rs) on the real transport: what
//! an RFC 6455 conformance suite checks first.

mod common;

use common::*;
use std::io::{Read, Write};
use tickcast::Server;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

fn echo_server() -> Server {
    Server::start(config().echo(true).max_message_size(1 << 20)).unwrap()
}

#[test]
fn text_binary_fragmented_and_large_messages_come_back_unchanged() {
    let server = echo_server();
    let mut c = Client::connect(server.local_addr());
    c.ws.send(Message::text("héllo ✓")).unwrap();
    assert_eq!(c.ws.read().unwrap(), Message::text("héllo ✓"));
    c.ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(c.ws.read().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    let big: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    c.ws.send(Message::binary(big.clone())).unwrap();
    assert_eq!(c.ws.read().unwrap(), Message::binary(big));
    // A text message in three fragments, with a ping between them.
    c.ws.send(Message::Frame(Frame::message(
        b"frag".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    c.ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    c.ws.send(Message::Frame(Frame::message(
        b"men".to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    c.ws.send(Message::Frame(Frame::message(
        b"ted".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(c.ws.read().unwrap(), Message::Pong(b"p".to_vec().into()));
    assert_eq!(c.ws.read().unwrap(), Message::text("fragmented"));
}

#[test]
fn protocol_errors_close_with_the_right_codes() {
    let server = Server::start(config().echo(true).max_message_size(1024)).unwrap();
    let addr = server.local_addr();

    let mut c = Client::connect(addr);
    c.ws.send(Message::Frame(Frame::message(
        vec![0xc3, 0x28],
        OpCode::Data(Data::Text),
        true,
    )))
    .unwrap();
    assert_eq!(c.expect_close().0, CloseCode::Invalid);

    let mut c = Client::connect(addr);
    c.ws.send(Message::binary(vec![0u8; 4096])).unwrap();
    assert_eq!(c.expect_close().0, CloseCode::Size);

    let mut c = Client::connect(addr);
    // A continuation with no message started.
    c.ws.send(Message::Frame(Frame::message(
        b"x".to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(c.expect_close().0, CloseCode::Protocol);

    // Reserved opcode 3, sent raw (masked, as a client must).
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    s.write_all(&[0x83, 0x80, 1, 2, 3, 4]).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let body = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(body[0], 0x88, "{body:?}");
    assert_eq!(u16::from_be_bytes([body[2], body[3]]), 1002);
}
