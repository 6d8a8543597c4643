//! The `tickcastd` binary: demo feed, config file, SIGTERM.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn demo_daemon_serves_live_updates_and_exits_cleanly_on_sigterm() {
    let mut d = Daemon::start(&["--demo", "--listen", "127.0.0.1:0", "--demo-rate", "500"]);
    let mut c = Client::connect(d.addr);
    c.subscribe(&["*"]);
    let mut snapshots = 0;
    let mut updates = 0;
    while updates < 20 {
        let ev = c.next_event();
        match ev["event"].as_str() {
            Some("snapshot") => snapshots += 1,
            Some("update") => {
                updates += 1;
                assert!(ev["topic"].as_str().is_some() && ev["seq"].as_u64().is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(snapshots > 0 || updates > 0);
    assert!(http_raw(d.addr, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));

    assert_eq!(d.sigterm(), 0);
    let (code, _) = c.expect_close();
    assert_eq!(code, tungstenite::protocol::frame::coding::CloseCode::Away);
    let log = d.rest_of_log();
    assert!(
        log.iter().any(|l| l.contains("SIGTERM received")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("shutdown complete")),
        "{log:?}"
    );
}

#[test]
fn config_file_is_read_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("tickcastd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:1\"\nshards = 1\n[limits]\nmax_subscriptions = 2\n",
    )
    .unwrap();
    let mut d = Daemon::start(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(d.addr.port(), 1, "--listen wins over the file");
    let mut c = Client::connect(d.addr);
    c.send(serde_json::json!({"op":"subscribe","id":1,"topics":["A","B","C"]}));
    assert_eq!(
        c.next_event()["code"],
        "too_many_subscriptions",
        "the file's limit applies"
    );
    assert_eq!(d.sigterm(), 0);
}

#[test]
fn invalid_config_exits_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("tickcastd-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "shards = \"two\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shards"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args(["--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::thread::sleep(Duration::from_millis(1));
}
