//! permessage-deflate conformance on the echo server, with Python's
//! `websockets` on the other end: tests/conformance/deflate_echo.py, modeled
//! on the Autobahn suite's cases 12 and 13 (which need Python 2 or Docker
//! and cannot run here). Needs target/pyenv, which scripts/test makes.

use std::path::PathBuf;
use std::process::Command;
use tickcast::{Config, Server};

#[test]
fn compressed_echoes_of_every_size_and_every_offer_match_with_python_websockets() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join("target/pyenv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "target/pyenv with websockets is missing: run scripts/test, which makes it"
    );
    let cfg = Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .echo(true)
        .max_message_size(16 * 1024 * 1024)
        .max_outbound_bytes(64 * 1024 * 1024);
    let server = Server::start(cfg).unwrap();
    let out = Command::new(&python)
        .arg(repo.join("tests/conformance/deflate_echo.py"))
        .arg(format!("ws://{}/ws", server.local_addr()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("50 cases passed"), "{stdout}");
}
