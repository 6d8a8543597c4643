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
    let out = tickcast(&[
        "pub", &url, "--token", TOKEN, "CLI.P", "bid=2.5", "ask=2.75",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "CLI.P: published\n");
    let snap = server.snapshot("CLI.P").expect("published");
    assert_eq!((snap.prices.bid, snap.prices.ask), (Some(2.5), Some(2.75)));

    let out = tickcast(&["pub", &url, "--token", TOKEN, "--clear", "CLI.P"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        let out = tickcast(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
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
