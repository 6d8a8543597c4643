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
            // The demo's order books (`….book`) come as these.
            Some("snapshot") | Some("book") => snapshots += 1,
            Some("update") | Some("book_update") => {
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

#[test]
fn check_config_accepts_a_good_file_and_names_what_is_wrong_in_a_bad_one() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/tickcastd.example.toml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tickcastd"))
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--check-config", example]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).ends_with(": ok\n"));

    let dir = std::env::temp_dir().join(format!("tickcastd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("[limits]\nmax_subscriptons = 5\n", "max_subscriptons"),
        ("[limits]\nconflate_bytes = 10\n", "conflate_bytes"),
        (
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            "/nonexistent/cert.pem",
        ),
    ];
    for (i, (text, named)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = run(&["--check-config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{text}: {err}");
    }
    let missing = run(&["--check-config", "/nonexistent/tickcastd.toml"]);
    assert_eq!(missing.status.code(), Some(2));

    // Messages say what to write, in the file's words, and blame the right
    // thing: the file named once, a bad flag as the flag's.
    let words = [
        ("shards = \"two\"\n", "expected a whole number", "usize"),
        ("shards = 99\n", "shards must be from 1 to 64", "..="),
        (
            "[limits]\nstale_after_ms = 5\n",
            "stale_after_ms must be at least 100",
            "5ms",
        ),
        (
            "[limits]\nidle_timeout_ms = 5\n",
            "idle_timeout_ms must be longer than ping_interval_ms",
            "20s",
        ),
    ];
    for (i, (text, says, never)) in words.iter().enumerate() {
        let path = dir.join(format!("words{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = run(&["--check-config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(err.contains(says) && !err.contains(never), "{text}: {err}");
        assert_eq!(
            err.matches(path.to_str().unwrap()).count(),
            1,
            "the file named once: {err}"
        );
    }
    let flag = run(&["--check-config", example, "--listen", "nowhere"]);
    let err = String::from_utf8_lossy(&flag.stderr);
    assert_eq!(flag.status.code(), Some(2));
    assert!(
        err.contains("--listen address \"nowhere\"") && !err.contains(example),
        "{err}"
    );
    // Without a file: the flags alone (a usage error before).
    let alone = run(&["--check-config", "--shards", "2"]);
    assert_eq!(
        alone.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "the flags: ok\n");
}

#[test]
fn under_systemd_log_lines_carry_the_journal_priority() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args(["--listen", "127.0.0.1:0"])
        .env("JOURNAL_STREAM", "8:12345")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // <6> is "info": no timestamp of our own, the journal keeps one.
    assert!(first.starts_with("<6>tickcastd "), "{first}");
    assert!(first.contains(" listening on "), "{first}");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    require_tool(
        "systemd-analyze",
        "--version",
        "sudo apt-get install -y systemd",
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let unit =
        std::fs::read_to_string(format!("{root}/packaging/systemd/tickcastd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/tickcastd --config /etc/tickcast/tickcastd.toml")
    );
    // Verified with the paths of this checkout, which exist here.
    let local = unit
        .replace("/usr/local/bin/tickcastd", env!("CARGO_BIN_EXE_tickcastd"))
        .replace(
            "/etc/tickcast/tickcastd.toml",
            &format!("{root}/tickcastd.example.toml"),
        );
    let dir = std::env::temp_dir().join(format!("tickcastd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tickcastd.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
    // And the file the unit checks before starting is a valid config.
    let check = Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args(["--check-config", &format!("{root}/tickcastd.example.toml")])
        .output()
        .unwrap();
    assert!(check.status.success());
}
