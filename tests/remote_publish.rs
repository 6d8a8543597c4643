//! Network publishing on `/publish`: tokens, ordering and snapshots, bad
//! frames, back-pressure, and a publisher that outlives a daemon restart.

mod common;

use common::*;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickcast::publish::{self, PublisherEvent};
use tickcast::{Error, RemoteConfig, RemotePublisher, Server, Update};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

const PUB: &str = "pub-token-0123";
const SUB: &str = "sub-token-0123";

fn server_with_tokens() -> Server {
    Server::start(
        config()
            .publisher_tokens(vec![PUB.into()])
            .subscriber_tokens(vec![SUB.into()]),
    )
    .unwrap()
}

fn subscriber(addr: std::net::SocketAddr) -> Client {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("ws://{addr}/ws?token={SUB}")
        .into_client_request()
        .unwrap();
    req.headers_mut().remove("Sec-WebSocket-Protocol");
    let (ws, _) = tungstenite::client(req, stream).expect("subscriber with its token");
    Client::from_ws(ws)
}

#[test]
fn remote_updates_arrive_in_order_and_late_subscribers_get_snapshots() {
    let server = server_with_tokens();
    let addr = server.local_addr();
    let mut early = subscriber(addr);
    early.subscribe(&["R.*"]);
    let p =
        RemotePublisher::connect(RemoteConfig::new(format!("ws://{addr}/publish"), PUB)).unwrap();
    for i in 0..2000u64 {
        p.publish(
            Update::new(format!("R.{}", i % 4))
                .bid(i as f64)
                .timestamp_ns(i + 1),
        )
        .unwrap();
    }
    p.flush(TIMEOUT).unwrap();
    assert_eq!(p.acknowledged(), 2000);
    assert_eq!(p.lost(), 0);
    let mut next = [1u64; 4];
    for _ in 0..2000 {
        let ev = early.next_event();
        let t: usize = ev["topic"].as_str().unwrap()[2..].parse().unwrap();
        assert_eq!(ev["seq"].as_u64(), Some(next[t]), "{ev}");
        // Updates from one publisher keep their order per topic.
        assert_eq!(
            ev["bid"].as_f64(),
            Some(((next[t] - 1) * 4 + t as u64) as f64),
            "{ev}"
        );
        next[t] += 1;
    }
    let mut late = subscriber(addr);
    late.subscribe(&["R.2"]);
    let snap = late.next_event();
    assert_eq!(
        (snap["event"].as_str(), snap["seq"].as_u64()),
        (Some("snapshot"), Some(500))
    );
    assert_eq!(snap["bid"].as_f64(), Some(1998.0));
    p.close();
}

#[test]
fn tokens_are_checked_and_a_subscriber_token_cannot_publish() {
    let server = server_with_tokens();
    let addr = server.local_addr();
    let upgrade = |path: &str, auth: Option<&str>| {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        if let Some(t) = auth {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        let resp = http_raw(addr, req.as_bytes());
        resp.lines().next().unwrap_or("").to_string()
    };
    assert!(upgrade("/publish", None).starts_with("HTTP/1.1 401"));
    assert!(upgrade("/publish", Some("wrong-token-99")).starts_with("HTTP/1.1 401"));
    assert!(
        upgrade("/publish", Some(SUB)).starts_with("HTTP/1.1 401"),
        "a subscriber token cannot publish"
    );
    assert!(upgrade(&format!("/publish?token={SUB}"), None).starts_with("HTTP/1.1 401"));
    assert!(upgrade("/publish", Some(PUB)).starts_with("HTTP/1.1 101"));
    assert!(upgrade("/ws", None).starts_with("HTTP/1.1 401"));
    assert!(
        upgrade("/ws", Some(PUB)).starts_with("HTTP/1.1 401"),
        "a publisher token does not subscribe"
    );
    assert!(upgrade("/ws", Some(SUB)).starts_with("HTTP/1.1 101"));
    let refused = RemotePublisher::connect(RemoteConfig::new(
        format!("ws://{addr}/publish"),
        "wrong-token-99",
    ));
    match refused {
        Err(e @ Error::Refused { status: 401, .. }) => {
            assert!(e.to_string().contains("the token was refused"), "{e}")
        }
        other => panic!(
            "a wrong token fails at connect, as a refusal: {:?}",
            other.err()
        ),
    }

    // Without publisher tokens, network publishing is off.
    let open = common::server();
    let resp = http_raw(
        open.local_addr(),
        b"GET /publish HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer anything-at-all\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
}

#[test]
fn malformed_publish_frames_get_errors_and_publish_nothing() {
    let server = server_with_tokens();
    let addr = server.local_addr();
    let mut sub = subscriber(addr);
    sub.subscribe(&["*"]);
    let mut ws = raw_publisher(addr, PUB);

    ws.send(Message::binary(vec![0xc1, 0x00])).unwrap();
    let PublisherEvent::Error { code, .. } = next_publisher_event(&mut ws) else {
        panic!()
    };
    assert_eq!(code, "bad_frame");

    ws.send(Message::text("{\"topic\":\"A\"}")).unwrap();
    let PublisherEvent::Error { code, .. } = next_publisher_event(&mut ws) else {
        panic!()
    };
    assert_eq!(code, "bad_frame");

    // A bad update is refused alone, by its index; the good one beside it
    // in the same frame is published.
    let frame = publish::encode(&[
        Update::new("GOOD").bid(1.0),
        Update::new("BAD TOPIC").bid(2.0),
        Update::new("EMPTY"),
    ]);
    ws.send(Message::binary(frame)).unwrap();
    let PublisherEvent::Error {
        code,
        refused,
        message,
        indexes,
    } = next_error(&mut ws)
    else {
        panic!()
    };
    assert_eq!((code.as_str(), refused), ("bad_update", 2), "{message}");
    assert_eq!(indexes, [1, 2], "{message}");
    assert!(message.contains("update 1 of the frame"), "{message}");
    ws.send(Message::binary(publish::encode(&[
        Update::new("GOOD").bid(f64::NAN)
    ])))
    .unwrap();
    let PublisherEvent::Error { indexes, .. } = next_error(&mut ws) else {
        panic!()
    };
    assert_eq!(indexes, [0]);

    ws.send(Message::binary(publish::encode(&[
        Update::new("GOOD").ask(3.0)
    ])))
    .unwrap();
    loop {
        match next_publisher_event(&mut ws) {
            PublisherEvent::Ack { count: 2 } => break,
            PublisherEvent::Ack { count } if count < 2 => {}
            other => panic!("{other:?}"),
        }
    }
    let ev = sub.next_event();
    assert_eq!(
        (ev["topic"].as_str(), ev["seq"].as_u64(), ev["bid"].as_f64()),
        (Some("GOOD"), Some(1), Some(1.0))
    );
    let ev = sub.next_event();
    assert_eq!(
        (ev["topic"].as_str(), ev["seq"].as_u64(), ev["ask"].as_f64()),
        (Some("GOOD"), Some(2), Some(3.0))
    );
    assert!(
        ev.get("bid").is_none(),
        "nothing from the refused updates: {ev}"
    );
    assert_eq!(server.topic_count(), 1);
}

#[test]
fn a_fast_publisher_is_back_pressured_and_the_daemon_stays_bounded() {
    let dir = std::env::temp_dir().join(format!("tickcast-bp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bp.toml");
    std::fs::write(
        &cfg,
        format!("shards = 1\ningest_capacity = 1024\n[auth]\npublisher_tokens = [\"{PUB}\"]\n"),
    )
    .unwrap();
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    // In KiB.
    let rss = |pid: u32| (rss_bytes(pid) / 1024.0) as u64;
    // Subscribers that keep up make every update cost the daemon real work.
    let mut subs: Vec<Client> = (0..20).map(|_| Client::connect(d.addr)).collect();
    for s in subs.iter_mut() {
        s.subscribe(&["*"]);
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(
                move || while s.try_next_event(Duration::from_millis(500)).is_some() {},
            )
        })
        .collect();
    let before = rss(d.child.id());
    let p = RemotePublisher::connect(
        RemoteConfig::new(format!("ws://{}/publish", d.addr), PUB).queue_capacity(4096),
    )
    .unwrap();
    let mut full = 0u64;
    let mut peak = before;
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        match p.try_publish(Update::new(format!("F.{}", i % 50)).bid(i as f64)) {
            Ok(()) => i += 1,
            Err(Error::Full) => {
                full += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("{e}"),
        }
        if i % 10_000 == 0 {
            peak = peak.max(rss(d.child.id()));
        }
    }
    peak = peak.max(rss(d.child.id()));
    assert!(
        full > 0,
        "the publisher never felt back-pressure ({i} published)"
    );
    assert!(
        peak < before + 100 * 1024,
        "daemon RSS grew from {before} KiB to {peak} KiB"
    );
    let depth = metric_at(d.addr, "tickcast_ingest_queue_depth").unwrap();
    assert!(depth <= 1024.0, "ingest queue bounded: {depth}");
    drop(p);
    assert_eq!(d.sigterm(), 0);
    for r in readers {
        let _ = r.join();
    }
}

#[test]
fn the_publisher_reconnects_after_a_daemon_restart_and_reports_loss() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("tickcast-rs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("r.toml");
    let mut f = std::fs::File::create(&cfg).unwrap();
    writeln!(
        f,
        "listen = \"127.0.0.1:{port}\"\n[auth]\npublisher_tokens = [\"{PUB}\"]"
    )
    .unwrap();
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);

    let lost_seen = Arc::new(AtomicU64::new(0));
    let seen = lost_seen.clone();
    let p = RemotePublisher::connect(
        RemoteConfig::new(format!("ws://127.0.0.1:{port}/publish"), PUB)
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .on_loss(move |n| {
                seen.fetch_add(n, Ordering::SeqCst);
            }),
    )
    .unwrap();
    p.publish(Update::new("X").bid(1.0)).unwrap();
    p.flush(TIMEOUT).unwrap();

    // Freeze the daemon so updates are sent but never acknowledged, then kill it.
    unsafe { libc::kill(d.child.id() as i32, libc::SIGSTOP) };
    // kill() only queues the signal: wait until every daemon thread is in
    // the stopped state, or it may still acknowledge the first updates.
    wait_until("the daemon is stopped", || {
        all_threads_stopped(d.child.id())
    });
    for i in 0..100 {
        p.publish(Update::new("X").bid(i as f64)).unwrap();
    }
    // Written to the socket (the kernel buffers them for the stopped daemon);
    // updates still queued in the publisher would not be lost.
    wait_until("the updates are sent", || p.sent() == 101);
    unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    wait_until("the drop is noticed", || !p.is_connected());
    wait_until("loss reported", || p.lost() > 0);
    assert_eq!(
        lost_seen.load(Ordering::SeqCst),
        p.lost(),
        "the callback saw the same loss"
    );
    assert_eq!(
        p.lost(),
        100,
        "exactly the updates the stopped daemon never acknowledged"
    );

    // Published while the daemon is down: queued, sent after the reconnect.
    p.publish(Update::new("Y").ask(7.0)).unwrap();
    let d2 = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    wait_until("reconnected", || p.is_connected() && p.reconnects() >= 1);
    p.flush(TIMEOUT).unwrap();
    let mut c = Client::connect(d2.addr);
    c.subscribe(&["Y"]);
    // Acknowledged means queued: the router may sequence it just before or
    // just after this subscription, so it arrives as the snapshot or as update 1.
    let first = c.next_event();
    assert_eq!(first["ask"].as_f64(), Some(7.0), "{first}");
    assert!(first["event"] == "snapshot" || first["seq"] == 1, "{first}");
    p.publish(Update::new("Y").ask(8.0)).unwrap();
    assert_eq!(c.next_event()["ask"].as_f64(), Some(8.0));
    let mut d2 = d2;
    assert_eq!(d2.sigterm(), 0);
}

/// Are all threads of process `pid` stopped (state `T` in /proc)?
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    })
}

/// `?on_leave=keep` (or `Tickcast-On-Leave: keep`) leaves a departed
/// publisher's topics live; without it they go stale; a bad value is a 400.
#[test]
fn on_leave_keep_leaves_topics_live_and_a_bad_value_is_refused() {
    let server = server_with_tokens();
    let addr = server.local_addr();
    let publish_once = |path: &str, header: Option<&str>, topic: &str| {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {PUB}").parse().unwrap());
        if let Some(v) = header {
            req.headers_mut()
                .insert(publish::ON_LEAVE_HEADER, v.parse().unwrap());
        }
        let (mut ws, _) = tungstenite::client(req, stream).expect("publisher handshake");
        let frame =
            rmp_serde::to_vec_named(&serde_json::json!({"topic": topic, "bid": 1.0})).unwrap();
        ws.send(Message::binary(frame)).unwrap();
        wait_until("published", || server.snapshot(topic).is_some());
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    };
    publish_once("/publish", None, "OL.STALE");
    wait_until("stale after leaving", || {
        server.snapshot("OL.STALE").unwrap().stale
    });
    publish_once("/publish?on_leave=keep", None, "OL.QUERY");
    publish_once("/publish", Some("keep"), "OL.HEADER");
    // The stale mark for OL.STALE came within this time; these stay live.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!server.snapshot("OL.QUERY").unwrap().stale);
    assert!(!server.snapshot("OL.HEADER").unwrap().stale);

    let resp = http_raw(
        addr,
        format!(
            "GET /publish?on_leave=never HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PUB}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(
        resp.contains("on_leave must be \"stale\" or \"keep\""),
        "{resp}"
    );
}
