//! The `tickcast` command: `sub --json` prints every event as one JSON line,
//! `pub` publishes and clears over /publish, and `sub` draws a live table in
//! a real terminal (tmux).

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickcast::{Config, Server, Update};

const TOKEN: &str = "cli-publisher-token";

fn server() -> Server {
    Server::start(
        Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .shards(1)
            .publisher_tokens(vec![TOKEN.into()]),
    )
    .unwrap()
}

fn tickcast(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    c.args(args);
    c
}

/// Runs the command and checks it exits 1 with `says` in its message.
fn fails_saying(args: &[&str], says: &str) {
    let out = tickcast(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

/// Kills the child when the test ends, passed or failed.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sub_json_prints_one_event_per_line() {
    let server = server();
    let url = format!("ws://{}/ws", server.local_addr());
    server
        .publisher()
        .publish(Update::new("CLI.A").bid(1.5))
        .unwrap();
    wait_until("first value", || server.snapshot("CLI.A").is_some());
    let mut child = Reaped(
        tickcast(&["sub", &url, "CLI.*", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let ack = next();
    assert_eq!(
        (ack["event"].as_str(), ack["id"].as_u64()),
        (Some("subscribed"), Some(1)),
        "{ack}"
    );
    let snap = next();
    assert_eq!(
        (snap["event"].as_str(), snap["bid"].as_f64()),
        (Some("snapshot"), Some(1.5)),
        "{snap}"
    );
    server
        .publisher()
        .publish(Update::new("CLI.A").ask(1.6))
        .unwrap();
    let up = next();
    assert_eq!(
        (up["seq"].as_u64(), up["ask"].as_f64()),
        (Some(2), Some(1.6)),
        "{up}"
    );
}

#[test]
fn pub_publishes_and_clears_and_refuses_bad_input() {
    let server = server();
    let url = format!("ws://{}/publish", server.local_addr());
    let printed = succeeds(&mut tickcast(&[
        "pub", &url, "--token", TOKEN, "CLI.P", "bid=2.5", "ask=2.75",
    ]));
    assert_eq!(printed, "CLI.P: published\n");
    let snap = server.snapshot("CLI.P").expect("published");
    assert_eq!((snap.prices.bid, snap.prices.ask), (Some(2.5), Some(2.75)));

    succeeds(&mut tickcast(&[
        "pub", &url, "--token", TOKEN, "--clear", "CLI.P",
    ]));
    wait_until("cleared", || server.snapshot("CLI.P").is_none());

    for (args, says) in [
        (
            vec!["pub", &url, "--token", TOKEN, "CLI.P", "bid"],
            "not name=value",
        ),
        (
            vec!["pub", &url, "--token", TOKEN, "CLI.P", "bid=x"],
            "not a number",
        ),
        (
            vec!["pub", &url, "--token", TOKEN, "CLI.P", "price=1"],
            "unknown field",
        ),
        (vec!["pub", &url, "CLI.P", "bid=1"], "--token"),
        (
            vec!["pub", &url, "--token", "wrong-token-1", "CLI.P", "bid=1"],
            "401",
        ),
        (
            vec!["pub", &url, "--token", TOKEN, "BAD TOPIC", "bid=1"],
            "topic",
        ),
    ] {
        fails_saying(&args, says);
    }
}

#[test]
fn sub_draws_a_live_table_in_a_real_terminal() {
    require_tool("tmux", "-V", "sudo apt-get install -y tmux");
    let server = server();
    let url = format!("ws://{}/ws", server.local_addr());
    let p = server.publisher();
    p.publish(Update::new("CLI.T").bid(10.25).ask(10.5))
        .unwrap();
    p.publish(Update::new("CLI.U").last(7.0)).unwrap();
    wait_until("first values", || server.topic_count() == 2);
    let session = format!("tickcast-cli-{}", std::process::id());
    let sock = std::env::temp_dir().join(format!("{session}.tmux"));
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let bin = env!("CARGO_BIN_EXE_tickcast");
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "20",
        &format!("{bin} sub {url} 'CLI.*'"),
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Kill(Box<dyn Fn()>);
    impl Drop for Kill {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let sock2 = sock.clone();
    let session2 = session.clone();
    let _kill = Kill(Box::new(move || {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&sock2)
            .args(["kill-server"])
            .output();
        let _ = std::fs::remove_file(&sock2);
        let _ = session2.len();
    }));
    let screen = |want: &[&str]| {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let out = tmux(&["capture-pane", "-p", "-t", &session]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if want.iter().all(|w| text.contains(w)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {want:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = screen(&["TOPIC", "CLI.T", "10.25", "10.5", "CLI.U"]);
    assert!(first.contains("2 topics"), "{first}");
    // The bytes the connection has received, in the header.
    let received = first
        .lines()
        .next()
        .and_then(|l| l.split("topics  ").nth(1));
    let bytes: u64 = received
        .and_then(|r| {
            r.strip_suffix(" B received")
                .or(r.split(" B received").next())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 100, "header shows bytes received: {first}");
    // It refreshes: a new price and a stale topic show up in place.
    p.publish(Update::new("CLI.T").bid(11.75)).unwrap();
    p.mark_stale("CLI.U").unwrap();
    let later = screen(&["11.75", "stale"]);
    let row = later.lines().find(|l| l.starts_with("CLI.T")).unwrap();
    assert!(
        row.contains("11.75") && row.contains("10.5"),
        "merged row: {row}"
    );
}

#[test]
fn pub_keep_live_leaves_the_topic_live_and_without_it_the_topic_goes_stale() {
    let server = server();
    let url = format!("ws://{}/publish", server.local_addr());
    for (topic, keep, stale_after) in [("CLI.S", false, true), ("CLI.K", true, false)] {
        let mut args = vec!["pub", &url, "--token", TOKEN, topic, "bid=3"];
        if keep {
            args.push("--keep-live");
        }
        succeeds(&mut tickcast(&args));
        wait_until("published", || server.snapshot(topic).is_some());
        if stale_after {
            wait_until("marked stale on leave", || {
                server.snapshot(topic).unwrap().stale
            });
        } else {
            // The stale mark follows a disconnect within a loop turn (the
            // other topic shows it); half a second is far more.
            std::thread::sleep(Duration::from_millis(500));
            assert!(!server.snapshot(topic).unwrap().stale, "{topic} kept live");
        }
    }
}

#[test]
fn sub_stops_by_itself_with_count_or_for_and_exits_1_on_an_error_in_json_mode() {
    let server = server();
    let url = format!("ws://{}/ws", server.local_addr());
    for i in 1..=3 {
        server
            .publisher()
            .publish(Update::new(format!("CLI.C{i}")).bid(i as f64))
            .unwrap();
    }
    // Every one held (they may be on different routers) before subscribing.
    wait_until("values", || {
        (1..=3).all(|i| server.snapshot(&format!("CLI.C{i}")).is_some())
    });
    let printed = succeeds(&mut tickcast(&[
        "sub", &url, "CLI.*", "--json", "--count", "2",
    ]));
    let events: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values = events.iter().filter(|e| e["event"] == "snapshot").count();
    assert_eq!(values, 2, "{events:?}");

    let started = Instant::now();
    let out = tickcast(&["sub", &url, "CLI.*", "--for", "0.5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    // Not a terminal: a plain table, no screen codes.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!table.contains('\x1b'), "{table:?}");
    assert!(
        table.contains("CLI.C1") && table.contains("TOPIC"),
        "{table}"
    );

    let out = tickcast(&["sub", &url, "bad topic!", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("\"error\""),
        "the error event is printed: {printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_topic"));
}

#[test]
fn wrong_endpoints_ports_and_tokens_are_named_as_such() {
    let server = server();
    let addr = server.local_addr();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ws = format!("ws://{addr}/ws");
    let publish = format!("ws://{addr}/publish");
    let root = format!("ws://{addr}/");
    let nowhere = format!("ws://{free}/publish");
    for (args, says) in [
        (
            vec!["pub", &ws, "--token", TOKEN, "A", "bid=1"],
            "is the subscriber endpoint; publish on /publish",
        ),
        (
            vec!["sub", &publish],
            "is the publisher endpoint; subscribe on /ws",
        ),
        (
            vec!["sub", &root],
            "not a WebSocket endpoint: subscribers connect to /ws",
        ),
        (
            vec!["pub", &publish, "--token", "wrong-token-1", "A", "bid=1"],
            "the token was refused",
        ),
        (
            vec!["pub", &nowhere, "--token", TOKEN, "A", "bid=1"],
            "nothing listens there",
        ),
    ] {
        fails_saying(&args, says);
    }
}
