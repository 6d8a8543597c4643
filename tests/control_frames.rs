//! Control frames do not wait behind a subscriber's backlog: a pong goes
//! out right after the frame on the wire, and a close (other than a
//! shutdown's) goes first and drops the data behind it. Each test leaves a
//! subscriber unread until the server holds a large queue for it.

mod common;

use common::*;
use std::time::Duration;
use tickcast::{Server, Update};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// Publishes `n` updates of one topic and waits until the outbound queue of
/// the (stalled) subscriber holds a backlog and has stopped growing.
fn build_backlog(server: &Server, topic: &str, n: u64) -> f64 {
    let p = server.publisher();
    for i in 0..n {
        p.publish(Update::new(topic).bid(i as f64).ask(i as f64 + 0.5))
            .unwrap();
    }
    wait_until("the router sequenced every update", || {
        server.snapshot(topic).is_some_and(|s| s.seq == n)
    });
    let mut last = -1.0;
    wait_until("the backlog settles", || {
        let now = metric(server, "tickcast_outbound_queued_bytes");
        let settled = now == last && now > 64.0 * 1024.0;
        last = now;
        std::thread::sleep(Duration::from_millis(50));
        settled
    });
    last
}

/// Room to queue everything: no conflation, no slow-consumer close.
fn roomy() -> tickcast::Config {
    config()
        .shards(1)
        .conflate_bytes(256 << 20)
        .max_outbound_bytes(512 << 20)
}

#[test]
fn a_pong_overtakes_the_backlog_and_no_update_is_lost() {
    const N: u64 = 150_000;
    let server = Server::start(roomy()).unwrap();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["P"]);
    build_backlog(&server, "P", N);

    let read = metric(&server, "tickcast_messages_received_total");
    c.ws.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    // Counted once read, after tungstenite has queued the pong.
    wait_until("the ping is read", || {
        metric(&server, "tickcast_messages_received_total") == read + 1.0
    });
    let mut next = 1;
    let mut pong_after = None;
    while next <= N {
        match c.ws.read().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                pong_after = Some(next - 1);
            }
            Message::Text(t) => {
                let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_eq!(ev["seq"].as_u64(), Some(next), "gap or reorder: {ev}");
                next += 1;
            }
            _ => {}
        }
    }
    let pong_after = pong_after.expect("a pong arrived");
    // Everything after the kernel's socket buffers was still queued in the
    // server when the pong was: it must not wait behind all of it.
    assert!(
        pong_after < N - 100,
        "the pong came after update {pong_after} of {N}"
    );
}

#[test]
fn a_protocol_close_goes_first_and_drops_the_backlog() {
    const N: u64 = 150_000;
    let server = Server::start(roomy()).unwrap();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["Q"]);
    let queued = build_backlog(&server, "Q", N);
    // A binary frame on a JSON connection is refused with 1003.
    c.ws.send(Message::Binary(b"x".to_vec().into())).unwrap();
    wait_until("the backlog is dropped", || {
        metric(&server, "tickcast_outbound_queued_bytes") < queued / 2.0
    });
    let mut next = 1;
    let code = loop {
        match c.ws.read() {
            Ok(Message::Text(t)) => {
                let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_eq!(ev["seq"].as_u64(), Some(next), "gap or reorder: {ev}");
                next += 1;
            }
            Ok(Message::Close(f)) => break f.map(|f| f.code),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Unsupported));
    assert!(
        next < N - 100,
        "the close came after update {} of {N}",
        next - 1
    );
}

/// Autobahn case 2.10: ten pings sent at once (one write, so the server
/// reads them in one turn) get ten pongs, each with its ping's payload, in
/// order.
#[test]
fn each_of_ten_pings_sent_at_once_gets_its_own_pong() {
    use std::io::Write;
    let server = Server::start(config()).unwrap();
    let mut c = Client::connect(server.local_addr());
    let mut burst = Vec::new();
    for i in 0..10u8 {
        let payload = [b'p', b'0' + i];
        let mask = [0x11, 0x22, 0x33, 0x44];
        burst.extend_from_slice(&[0x89, 0x80 | payload.len() as u8]);
        burst.extend_from_slice(&mask);
        burst.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    }
    c.ws.get_mut().write_all(&burst).unwrap();
    let mut pongs = Vec::new();
    while pongs.len() < 10 {
        match c.ws.read().unwrap() {
            Message::Pong(p) => pongs.push(p.to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'p', b'0' + i]).collect();
    assert_eq!(pongs, want);
}
