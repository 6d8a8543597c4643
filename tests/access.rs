//! Issue 16: JWTs with topic scopes, publisher scopes, expiry and refresh,
//! and the command rate limit, against a real server over loopback. The
//! tokens are minted here: HS256 with a shared secret, EdDSA with an
//! Ed25519 key pair made by rcgen.

mod common;

use common::{
    connect_with_token as connect, http_raw, next_publisher_event, raw_publisher, Client, TIMEOUT,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tickcast::publish::{self, PublisherEvent};
use tickcast::{Config, Server, Update};
use tungstenite::protocol::frame::coding::CloseCode;

const SECRET: &str = "a shared secret of more than sixteen bytes";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A file in a fresh temporary directory.
fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tickcast-access-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn hs256(claims: Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// A server accepting HS256 JWTs signed with `SECRET`.
fn jwt_server(cfg: Config) -> Server {
    let secret = temp_file("secret", format!("{SECRET}\n").as_bytes());
    Server::start(cfg.jwt_hmac_secret_file(secret)).expect("server starts")
}

fn refused(addr: SocketAddr, token: &str) -> String {
    match connect(addr, token) {
        Ok(_) => panic!("upgraded with a token that should be refused"),
        Err(e) => e,
    }
}

#[test]
fn a_subscribe_is_allowed_only_inside_the_tokens_topics() {
    let server = jwt_server(common::config());
    let addr = server.local_addr();
    let token = hs256(json!({"exp": now() + 3600, "sub": "alice", "topics": ["FX.*", "BTC-USD"]}));
    let mut c = connect(addr, &token).unwrap();
    // Exact inside a pattern, a narrower pattern, the exact topic itself.
    c.subscribe(&["FX.EURUSD"]);
    c.subscribe(&["FX.EUR*"]);
    c.subscribe(&["BTC-USD"]);
    // Wider than the scope, or partly outside it: refused whole.
    for topics in [
        json!(["*"]),
        json!(["BTC-*"]),
        json!(["FX.GBPUSD", "EQ.AAPL"]),
    ] {
        let id = c.command(json!({"op": "subscribe", "topics": topics}));
        let err = c.next_event();
        assert_eq!(
            (err["event"].as_str(), err["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{err}"
        );
        assert_eq!(err["id"], id);
    }
    // FX.GBPUSD was not subscribed by the refused command.
    let p = server.publisher();
    p.publish(Update::new("FX.GBPUSD").bid(1.0)).unwrap();
    p.publish(Update::new("FX.EURUSD").bid(2.0)).unwrap();
    let ev = c.next_event();
    assert_eq!(ev["topic"], "FX.EURUSD", "{ev}");
    assert!(c.try_next_event(Duration::from_millis(200)).is_none());
}

#[test]
fn tokens_are_verified_before_the_upgrade() {
    let (pem_private, pem_public) = {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        (kp.serialize_pem(), kp.public_key_pem())
    };
    let public = temp_file("ed25519.pub.pem", pem_public.as_bytes());
    let server = jwt_server(common::config().jwt_public_key_file(public));
    let addr = server.local_addr();

    // No token at all.
    let resp = http_raw(
        addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    // Expired, unsigned by us, without exp, a publisher's, malformed.
    assert!(refused(addr, &hs256(json!({"exp": now() - 10}))).contains("token expired"));
    let other = EncodingKey::from_secret(b"another secret that is long enough");
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": now() + 60}),
        &other,
    )
    .unwrap();
    assert!(refused(addr, &forged).contains("bad token signature"));
    assert!(refused(addr, &hs256(json!({"sub": "x"}))).contains("exp"));
    assert!(
        refused(addr, &hs256(json!({"exp": now() + 60, "publish": ["*"]}))).contains("/publish")
    );
    assert!(refused(addr, "not.a.jwt").starts_with("401"));
    assert!(
        refused(addr, &hs256(json!({"exp": now() + 60, "topics": ["F*X"]}))).contains("topics")
    );
    // Both algorithms open /ws.
    connect(addr, &hs256(json!({"exp": now() + 60}))).unwrap();
    let ed = EncodingKey::from_ed_pem(pem_private.as_bytes()).unwrap();
    let token = encode(
        &Header::new(Algorithm::EdDSA),
        &json!({"exp": now() + 60, "topics": ["*"]}),
        &ed,
    )
    .unwrap();
    let mut c = connect(addr, &token).unwrap();
    c.subscribe(&["*"]);
    // A 1 MB Authorization header is answered 431, not parsed.
    let mut big = b"GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\r\n\r\n");
    assert!(http_raw(addr, &big).starts_with("HTTP/1.1 431"));
}

#[test]
fn an_expired_token_gets_expired_then_a_close_unless_refreshed_with_auth() {
    let grace = Duration::from_millis(1_500);
    let server = jwt_server(common::config().expiry_grace(grace));
    let addr = server.local_addr();
    let exp = now() + 2;
    let token = hs256(json!({"exp": exp, "topics": ["FX.*", "EQ.*"]}));
    let mut lapsing = connect(addr, &token).unwrap();
    let mut renewing = connect(addr, &token).unwrap();
    renewing.subscribe(&["FX.EURUSD", "EQ.*"]);

    let ev = lapsing.next_event();
    let told = Instant::now();
    assert_eq!(ev, json!({"event": "expired", "exp": exp}));
    assert!(now() >= exp, "not before exp");
    // The other one is told too, and presents a narrower token in time.
    assert_eq!(renewing.next_event()["event"], "expired");
    let fresh = hs256(json!({"exp": now() + 3600, "topics": ["FX.*"]}));
    let id = renewing.command(json!({"op": "auth", "token": fresh}));
    let ev = renewing.next_event();
    assert_eq!(ev["event"], "authenticated", "{ev}");
    assert_eq!(ev["id"], id);
    assert_eq!(ev["dropped"], json!(["EQ.*"]));

    let (code, reason) = lapsing.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "token expired")
    );
    let waited = told.elapsed();
    // The sweep that closes runs at least once a second.
    assert!(
        waited >= grace - Duration::from_millis(100),
        "closed {waited:?} after expired, before the grace of {grace:?}"
    );
    // Past the grace it is still open and still gets FX, no longer EQ.
    std::thread::sleep(grace + Duration::from_millis(1_200));
    let p = server.publisher();
    p.publish(Update::new("EQ.AAPL").bid(1.0)).unwrap();
    p.publish(Update::new("FX.EURUSD").bid(1.0)).unwrap();
    assert_eq!(renewing.next_event()["topic"], "FX.EURUSD");
    // A bad token is refused and changes nothing.
    renewing.command(json!({"op": "auth", "token": "x.y.z"}));
    assert_eq!(renewing.next_event()["code"], "unauthorized");
}

#[test]
fn a_publisher_token_writes_only_inside_its_publish_scope() {
    let server = jwt_server(common::config());
    let addr = server.local_addr();
    let token = hs256(json!({"exp": now() + 3600, "sub": "feed-1", "publish": ["FX.*"]}));
    // It opens /publish only.
    assert!(refused(addr, &token).contains("/publish"));
    let mut ws = raw_publisher(addr, &token);
    let frame = publish::encode(&[
        Update::new("FX.EURUSD").bid(1.0),
        Update::new("EQ.AAPL").bid(2.0),
    ]);
    ws.send(tungstenite::Message::binary(frame)).unwrap();
    match next_publisher_event(&mut ws) {
        PublisherEvent::Error {
            code,
            indexes,
            refused,
            message,
        } => {
            assert_eq!(code, "forbidden", "{message}");
            assert_eq!((indexes, refused), (vec![1], 2));
            assert!(message.contains("EQ.AAPL"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let ok = publish::encode(&[Update::new("FX.EURUSD").bid(3.0)]);
    ws.send(tungstenite::Message::binary(ok)).unwrap();
    common::wait_until("the in-scope update", || {
        server.snapshot("FX.EURUSD").is_some()
    });
    assert_eq!(
        server.snapshot("FX.EURUSD").unwrap().seq,
        1,
        "the refused frame published nothing"
    );
    assert!(server.snapshot("EQ.AAPL").is_none());
    assert_eq!(
        common::metric(&server, "tickcast_publish_refused_total"),
        2.0
    );

    // The Rust remote publisher learns the scope at connect and refuses at
    // the call what the server would refuse.
    let remote = tickcast::RemotePublisher::connect(tickcast::RemoteConfig::new(
        format!("ws://{addr}/publish"),
        &token,
    ))
    .unwrap();
    let refused = remote.publish(Update::new("EQ.MSFT").bid(1.0));
    assert!(
        matches!(&refused, Err(tickcast::Error::Forbidden { topic }) if topic == "EQ.MSFT"),
        "{refused:?}"
    );
    remote.publish(Update::new("FX.USDJPY").bid(150.0)).unwrap();
    remote.flush(TIMEOUT).unwrap();
    assert_eq!(remote.lost(), 0);
    // Acknowledged means in the ingest queue; the router applies it next.
    common::wait_until("the remote update", || {
        server.snapshot("FX.USDJPY").is_some()
    });
}

/// A client that sends steadily faster than its rate gets a command
/// through now and then, as the bucket refills; it is still flooding, and
/// is closed once two seconds' worth were refused. Refused commands are
/// answered with their own id, whatever their size (they are not parsed).
#[test]
fn a_steady_sender_over_the_rate_is_closed_and_refusals_echo_ids() {
    let server = Server::start(common::config().max_commands_per_sec(20.0)).unwrap();
    let mut c = Client::connect(server.local_addr());
    let topics: Vec<String> = (0..1024).map(|i| format!("T.{i}")).collect();
    // Five times the rate, for up to three seconds (the old rule, which
    // forgot refusals at each command let through, never closed it),
    // reading the replies between sends.
    c.ws.get_mut()
        .set_read_timeout(Some(std::time::Duration::from_millis(10)))
        .unwrap();
    let (mut run, mut refused, mut closed) = (0, 0, None);
    for i in 0..300u64 {
        let cmd = json!({"op":"unsubscribe","id":format!("u{i}"),"topics":topics});
        c.ws.send(tungstenite::Message::text(cmd.to_string()))
            .expect("open until the close frame is read");
        loop {
            match c.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
                    let id = ev["id"].as_str().expect("every reply echoes its id");
                    assert!(id.starts_with('u'), "{ev}");
                    match ev["event"].as_str() {
                        Some("unsubscribed") => run += 1,
                        Some("error") => {
                            assert_eq!(ev["code"], "rate_limited", "{ev}");
                            refused += 1;
                        }
                        _ => panic!("{ev}"),
                    }
                }
                Ok(tungstenite::Message::Close(Some(f))) => {
                    closed = Some((f.code, f.reason.to_string()));
                    break;
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                other => panic!("expected replies, then a close: {other:?}"),
            }
        }
        if closed.is_some() {
            break;
        }
    }
    assert_eq!(
        closed,
        Some((CloseCode::Policy, "command rate limit exceeded".to_string()))
    );
    assert!(run >= 20 && refused >= 40, "{run} run, {refused} refused");
}

/// A burst over the rate, then a pause long enough to refill half the
/// bucket: the refusals are forgiven, again and again.
#[test]
fn bursts_with_pauses_between_are_never_closed() {
    let server = Server::start(common::config().max_commands_per_sec(20.0)).unwrap();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..4 {
        for _ in 0..35 {
            c.send(json!({"op": "ping"}));
        }
        let mut limited = 0;
        for _ in 0..35 {
            if c.next_event()["event"] == "error" {
                limited += 1;
            }
        }
        assert!(limited >= 10, "{limited} refused of 35");
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    c.send(json!({"op": "ping", "id": 1}));
    assert_eq!(c.next_event()["event"], "pong");
}

#[test]
fn commands_over_the_rate_are_refused_and_a_flood_is_closed() {
    let server = Server::start(common::config().max_commands_per_sec(20.0)).unwrap();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..30 {
        c.send(json!({"op": "ping"}));
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..30 {
        match c.next_event()["event"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // A bucket of one second's worth, refilling at 20 a second.
    assert!((20..=23).contains(&pongs), "{pongs} pongs");
    assert_eq!(pongs + limited, 30);
    // Keeping on while refused: closed with 1008.
    for _ in 0..100 {
        if c.ws
            .send(tungstenite::Message::text(r#"{"op":"ping"}"#))
            .is_err()
        {
            break;
        }
    }
    let (code, reason) = c.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "command rate limit exceeded")
    );
}

/// Pings sent at once and how many were answered `pong` (the rest were
/// refused `rate_limited`).
fn pongs_of_a_burst(c: &mut Client, n: usize) -> usize {
    for _ in 0..n {
        c.send(json!({"op": "ping"}));
    }
    (0..n).filter(|_| c.next_event()["event"] == "pong").count()
}

/// A client from another loopback address than the others (127.0.0.2).
fn client_from_second_address(server: std::net::SocketAddr) -> Client {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.2:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.connect(&server.into()).unwrap();
    let stream: std::net::TcpStream = sock.into();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{server}/ws"), stream).unwrap();
    Client::from_ws(ws)
}

/// Closed for flooding, an address does not get a fresh bucket by
/// reconnecting: its next connections start with a few commands (8) rather
/// than a second's worth, for a while, and other addresses are not touched.
#[test]
fn reconnecting_after_a_flood_close_starts_with_an_empty_bucket() {
    let server = Server::start(common::config().max_commands_per_sec(20.0)).unwrap();
    let addr = server.local_addr();
    // Before any flood, a burst of 20 gets 20 pongs (a full bucket).
    assert_eq!(pongs_of_a_burst(&mut Client::connect(addr), 20), 20);
    let mut flooder = Client::connect(addr);
    for _ in 0..200 {
        if flooder
            .ws
            .send(tungstenite::Message::text(r#"{"op":"ping"}"#))
            .is_err()
        {
            break;
        }
    }
    assert_eq!(flooder.expect_close().0, CloseCode::Policy);
    let again = pongs_of_a_burst(&mut Client::connect(addr), 20);
    assert!(
        (8..=10).contains(&again),
        "{again} of 20 answered: 8 and what 20 a second refills"
    );
    assert_eq!(
        pongs_of_a_burst(&mut client_from_second_address(addr), 20),
        20
    );
}
