//! Starting, back-pressure, and clean shutdown of an embedded server.

mod common;

use common::*;
use std::time::Duration;
use tickcast::{Config, Error, Server, Update};
use tungstenite::protocol::frame::coding::CloseCode;

#[test]
fn port_zero_binds_a_real_port() {
    // Two servers asked for port 0 get two real, different ports, each
    // serving its own subscribers.
    let (a, b) = (server(), server());
    let (pa, pb) = (a.local_addr().port(), b.local_addr().port());
    assert_ne!(pa, 0);
    assert_ne!(pb, 0);
    assert_ne!(pa, pb);
    let mut c = Client::connect(a.local_addr());
    a.publisher()
        .publish(Update::new("PORT").last(1.0))
        .unwrap();
    wait_until("PORT exists", || a.snapshot("PORT").is_some());
    c.subscribe(&["PORT"]);
    assert_eq!(c.next_event()["event"], "snapshot");
    assert!(b.snapshot("PORT").is_none(), "the other server is its own");
}

#[test]
fn shutdown_closes_subscribers_with_1001_and_publishing_then_fails() {
    let server = server();
    let publisher = server.publisher();
    let mut clients: Vec<Client> = (0..4)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    for c in clients.iter_mut() {
        c.subscribe(&["X"]);
    }
    publisher.publish(Update::new("X").bid(1.0)).unwrap();
    for c in clients.iter_mut() {
        assert_eq!(c.next_event()["seq"], 1);
    }
    server.shutdown();
    for c in clients.iter_mut() {
        let (code, reason) = c.expect_close();
        assert_eq!(code, CloseCode::Away);
        assert!(reason.contains("shutting down"), "{reason}");
    }
    assert!(matches!(
        publisher.publish(Update::new("X").bid(2.0)),
        Err(Error::Closed)
    ));
    assert!(matches!(
        publisher.try_publish(Update::new("X").bid(2.0)),
        Err(Error::Closed)
    ));
}

#[test]
fn updates_accepted_before_shutdown_are_delivered() {
    let server = server();
    let publisher = server.publisher();
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["Y"]);
    for i in 0..500 {
        publisher.publish(Update::new("Y").bid(i as f64)).unwrap();
    }
    server.shutdown();
    for want in 1..=500u64 {
        assert_eq!(c.next_event()["seq"].as_u64(), Some(want));
    }
    assert_eq!(c.expect_close().0, CloseCode::Away);
}

#[test]
fn try_publish_reports_full_when_the_ingest_channel_is_full_and_publish_waits() {
    // A one-slot channel and a router that is busy: a burst must hit "full".
    let server = Server::start(config().ingest_capacity(1)).unwrap();
    let p = server.publisher();
    let mut full = 0;
    for i in 0..100_000 {
        match p.try_publish(Update::new("Z").bid(i as f64)) {
            Ok(()) => {}
            Err(Error::Full) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full > 0, "a 1-slot channel never reported full");
    // publish blocks instead, and everything it accepted is sequenced.
    let before = p.queue_len();
    assert!(before <= 1);
    for i in 0..1000 {
        p.publish(Update::new("W").bid(i as f64)).unwrap();
    }
    wait_until("all blocking publishes sequenced", || {
        server.snapshot("W").map(|s| s.seq) == Some(1000)
    });
    assert!(matches!(
        p.publish_timeout(Update::new("W").bid(1.0), Duration::from_millis(1)),
        Ok(()) | Err(Error::Full)
    ));
}

#[test]
fn publishers_on_many_threads_are_all_sequenced() {
    let server = server();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = server.publisher();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    p.publish(Update::new(format!("T{}", i % 4)).bid((t * 10_000 + i) as f64))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_until("16k updates", || {
        (0..4)
            .filter_map(|i| server.snapshot(&format!("T{i}")))
            .map(|s| s.seq)
            .sum::<u64>()
            == 16_000
    });
}

#[test]
fn connection_limit_refuses_with_503() {
    let server = Server::start(config().max_connections(2)).unwrap();
    let _a = Client::connect(server.local_addr());
    let _b = Client::connect(server.local_addr());
    let resp = http_raw(server.local_addr(), b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    // Health checks and metrics still answer while subscribers are refused.
    let resp = http_raw(
        server.local_addr(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = http_raw(
        server.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("tickcast_connections "), "{resp}");
}

#[test]
fn handshake_deadline_closes_a_silent_connection() {
    let server = Server::start(config().handshake_timeout(Duration::from_millis(300))).unwrap();
    let resp = http_raw(server.local_addr(), b"GET /ws HTTP/1.1\r\n");
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    wait_until("connection released", || server.connection_count() == 0);
}

#[test]
fn invalid_config_is_refused_at_start() {
    assert!(matches!(
        Server::start(Config::default().shards(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Server::start(Config::default().shards(65)),
        Err(Error::InvalidConfig(_))
    ));
    let taken = server();
    let again = Server::start(Config::default().listen(taken.local_addr()));
    assert!(
        matches!(again, Err(Error::Io(_))),
        "binding a used port fails"
    );
}
