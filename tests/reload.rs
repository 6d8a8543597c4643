//! Issue 16, reload without restart: SIGHUP and `POST /admin/reload` read
//! the daemon's file again; `Server::reload` applies a `Config`. New tokens
//! and limits take effect while connections stay; connections whose static
//! token was removed are closed with 1008; a bad file changes nothing.

mod common;

use common::{connect_with_token, http_raw, raw_publisher, Client, Daemon, TIMEOUT};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tickcast::{Server, Update};
use tungstenite::protocol::frame::coding::CloseCode;

/// A fresh temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickcast-reload-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces the file in one step, as an editor or a config manager does.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn daemon_file(tokens: &str, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nshards = 2\nlog_level = \"info\"\n{extra}\n\
         [auth]\nsubscriber_tokens = [{tokens}]\nadmin_tokens = [\"root-token\"]\n\
         [demo]\nenabled = true\nrate = 400\n"
    )
}

/// Reads events until `n` updates came, with no close on the way.
fn updates_keep_coming(c: &mut Client, n: usize) {
    let mut got = 0;
    while got < n {
        let ev = c.next_event();
        assert_ne!(ev["event"], "error", "{ev}");
        if ev["event"] == "update" {
            got += 1;
        }
    }
}

#[test]
fn sighup_applies_new_tokens_closes_removed_ones_and_keeps_the_rest() {
    let dir = temp_dir("sighup");
    let path = dir.join("tickcastd.toml");
    write_config(&path, &daemon_file("\"alpha-token\", \"beta-token\"", ""));
    let d = Daemon::start(&["--config", path.to_str().unwrap()]);

    let mut alpha = connect_with_token(d.addr, "alpha-token").unwrap();
    let mut beta = connect_with_token(d.addr, "beta-token").unwrap();
    for c in [&mut alpha, &mut beta] {
        c.subscribe(&["*"]);
        updates_keep_coming(c, 5);
    }
    assert!(connect_with_token(d.addr, "gamma-token")
        .unwrap_err()
        .starts_with("401"));

    write_config(
        &path,
        &daemon_file("\"beta-token\", \"gamma-token\"", "").replace("\"info\"", "\"debug\""),
    );
    d.signal(libc::SIGHUP);
    let line = d.wait_for_line("configuration reloaded (generation 1)");
    assert!(
        line.contains("subscriber_tokens") && line.contains("log_level"),
        "{line}"
    );
    assert!(
        !line.contains("gamma-token"),
        "token values are never logged: {line}"
    );

    let (code, reason) = alpha.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "token revoked")
    );
    updates_keep_coming(&mut beta, 20);
    let mut gamma = connect_with_token(d.addr, "gamma-token").expect("a token added by the reload");
    gamma.subscribe(&["*"]);
    updates_keep_coming(&mut gamma, 5);
    assert!(connect_with_token(d.addr, "alpha-token")
        .unwrap_err()
        .starts_with("401"));
    // The new log level is in force: a connection's end is logged at debug.
    drop(gamma);
    d.wait_for_line("DEBUG");

    // A file that does not parse: refused, the reason logged, nothing changed.
    write_config(&path, "[auth]\nsubscriber_tokens = \"beta-token\"\n");
    d.signal(libc::SIGHUP);
    let line = d.wait_for_line("reload refused");
    assert!(
        line.contains("tickcastd.toml") && line.contains("line 2"),
        "where: {line}"
    );
    updates_keep_coming(&mut beta, 20);
    assert!(connect_with_token(d.addr, "gamma-token").is_ok());
    assert!(connect_with_token(d.addr, "alpha-token").is_err());

    let mut d = d;
    assert_eq!(d.sigterm(), 0);
}

fn post_reload(addr: std::net::SocketAddr, token: &str) -> (u16, String) {
    let req = format!(
        "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    );
    let resp = http_raw(addr, req.as_bytes());
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn admin_reload_reports_what_changed_and_refuses_a_bad_file() {
    let dir = temp_dir("admin");
    let path = dir.join("tickcastd.toml");
    let file = |subs: usize, shards: usize, extra: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nshards = {shards}\n[limits]\nmax_subscriptions = {subs}\n\
             [auth]\nadmin_tokens = [\"root-token\"]\n{extra}"
        )
    };
    write_config(&path, &file(2, 1, ""));
    let mut d = Daemon::start(&["--config", path.to_str().unwrap()]);
    let mut c = Client::connect(d.addr);
    c.send(json!({"op":"subscribe","id":1,"topics":["A","B","C"]}));
    assert_eq!(c.next_event()["code"], "too_many_subscriptions");

    write_config(&path, &file(3, 2, ""));
    let (status, body) = post_reload(d.addr, "root-token");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reloaded"]["generation"], 1);
    assert_eq!(v["reloaded"]["applied"], json!(["max_subscriptions"]));
    assert_eq!(v["reloaded"]["need_restart"], json!(["shards"]));
    // The open connection is bound by the new limit.
    c.send(json!({"op":"subscribe","id":2,"topics":["A","B","C"]}));
    let ev = c.next_event();
    assert_eq!(ev["event"], "subscribed", "{ev}");

    // A JWT key file that cannot be read: 400 with the reason, nothing changes.
    let missing = dir.join("no-such-secret");
    let bad = format!("jwt_hmac_secret_file = \"{}\"\n", missing.display());
    write_config(&path, &file(1, 1, &bad));
    let (status, body) = post_reload(d.addr, "root-token");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no-such-secret"), "{body}");
    d.wait_for_line("reload refused");
    let mut c2 = Client::connect(d.addr);
    c2.send(json!({"op":"subscribe","id":1,"topics":["A","B","C"]}));
    assert_eq!(
        c2.next_event()["event"],
        "subscribed",
        "still 3, and no JWT needed"
    );

    assert_eq!(post_reload(d.addr, "wrong-token").0, 401);
    let get = http_raw(
        d.addr,
        b"GET /admin/reload HTTP/1.1\r\nAuthorization: Bearer root-token\r\n\r\n",
    );
    assert!(get.starts_with("HTTP/1.1 405"), "{get}");
    assert_eq!(d.sigterm(), 0);
}

#[test]
fn an_embedded_reload_closes_revoked_publishers_and_open_subscribers() {
    let base = common::config().admin_tokens(vec!["root-token".into()]);
    let server = Server::start(base.clone().publisher_tokens(vec!["publisher-1".into()])).unwrap();
    let addr = server.local_addr();
    let (status, body) = post_reload(addr, "root-token");
    assert_eq!(status, 404, "no source to reload from: {body}");

    let mut open = Client::connect(addr);
    open.subscribe(&["X"]);
    let mut publisher = raw_publisher(addr, "publisher-1");
    let report = server
        .reload(
            base.clone()
                .publisher_tokens(vec!["publisher-2".into()])
                .subscriber_tokens(vec!["subscriber-1".into()]),
        )
        .unwrap();
    assert_eq!(report.applied, ["subscriber_tokens", "publisher_tokens"]);
    let (code, reason) = open.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "a token is now required")
    );
    let deadline = Instant::now() + TIMEOUT;
    let closed = loop {
        match publisher.read() {
            Ok(tungstenite::Message::Close(f)) => break f.unwrap(),
            Ok(_) => assert!(Instant::now() < deadline),
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(closed.code, CloseCode::Policy);
    assert_eq!(closed.reason, "token revoked");
    let mut kept = connect_with_token(addr, "subscriber-1").unwrap();
    kept.subscribe(&["X"]);
    let mut p2 = raw_publisher(addr, "publisher-2");
    let frame = tickcast::publish::encode(&[Update::new("X").bid(1.0)]);
    p2.send(tungstenite::Message::Binary(frame.into())).unwrap();
    let ev = kept.next_event();
    assert_eq!(
        (ev["event"].as_str(), ev["bid"].as_f64()),
        (Some("update"), Some(1.0))
    );
    assert_eq!(server.config().publisher_tokens, ["publisher-2"]);
}

#[test]
fn a_rotated_jwt_secret_is_read_again_at_reload() {
    let dir = temp_dir("jwt");
    let secret = dir.join("secret");
    std::fs::write(&secret, "the first secret, long enough").unwrap();
    let cfg = common::config().jwt_hmac_secret_file(&secret);
    let server = Server::start(cfg.clone()).unwrap();
    let mint = |key: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let key = EncodingKey::from_secret(key.as_bytes());
        encode(&Header::new(Algorithm::HS256), &json!({"exp": exp}), &key).unwrap()
    };
    let (old, new) = (
        mint("the first secret, long enough"),
        mint("the second secret, also long"),
    );
    let addr = server.local_addr();
    let mut before = connect_with_token(addr, &old).expect("the first secret's token");
    assert!(connect_with_token(addr, &new).is_err());

    std::fs::write(&secret, "the second secret, also long").unwrap();
    let report = server.reload(cfg).unwrap();
    assert!(report.applied.is_empty(), "same settings, files read again");
    assert!(connect_with_token(addr, &new).is_ok());
    assert!(connect_with_token(addr, &old)
        .unwrap_err()
        .starts_with("401"));
    // A connection that came in with a JWT keeps its grant until `exp`.
    before.send(json!({"op":"ping","id":9}));
    assert_eq!(before.next_event()["event"], "pong");
}
