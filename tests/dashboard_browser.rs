//! The dashboard, end to end: `tickcastd --demo` serves `/`, and Debian's
//! headless Chromium driven by Playwright (tests/browser/dashboard.mjs) sees
//! rows appear, a price change, filtering, and saves a screenshot to
//! target/dashboard.png.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn ensure_playwright(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    require_tool("npm", "--version", "sudo apt-get install -y npm");
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm is installed")
        .success();
    assert!(ok, "npm ci in tests/browser failed");
}

/// Publishes one update on `/publish` and closes the connection: the topic
/// goes stale.
fn publish_and_leave(addr: std::net::SocketAddr, topic: &str) {
    use tungstenite::client::IntoClientRequest;
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("ws://{addr}/publish")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        "Bearer dashboard-test-token".parse().unwrap(),
    );
    let (mut ws, _) = tungstenite::client(req, stream).unwrap();
    let frame = tickcast::publish::encode(&[tickcast::Update::new(topic).bid(1.0).ask(1.5)]);
    ws.send(tungstenite::Message::binary(frame)).unwrap();
    // Wait for the ack: the update is in before the connection goes.
    while !matches!(ws.read().unwrap(), tungstenite::Message::Binary(_)) {}
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
}

#[test]
fn dashboard_shows_live_prices_in_a_real_headless_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: install it with `sudo apt-get install -y chromium` \
         (scripts/test does), or set CHROMIUM"
    );
    require_tool("node", "--version", "sudo apt-get install -y nodejs");
    let dir = browser_dir();
    ensure_playwright(&dir);

    // A publisher token, so the test can publish HALT.X and leave: the page
    // must show it stale.
    let cfg = std::env::temp_dir().join(format!("tickcast-dashboard-{}.toml", std::process::id()));
    std::fs::write(
        &cfg,
        "[auth]\npublisher_tokens = [\"dashboard-test-token\"]\n\
         admin_tokens = [\"dashboard-admin-token\"]\n",
    )
    .unwrap();
    let mut d = Daemon::start(&[
        "--demo",
        "--demo-rate",
        "1000",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    publish_and_leave(d.addr, "HALT.X");
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .arg(format!("http://{}", d.addr))
        .arg(&shot)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    eprint!("{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot missing or empty ({size} bytes)");
    assert_eq!(d.sigterm(), 0);
}

/// `tickcastd --demo --tls-self-signed`: the dashboard over https:// and
/// wss:// in Chromium, trusting the certificate by the key hash the log
/// prints (`--ignore-certificate-errors-spki-list`).
#[test]
fn dashboard_over_wss_with_the_self_signed_certificate_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium} (scripts/test installs it)"
    );
    require_tool("node", "--version", "sudo apt-get install -y nodejs");
    let dir = browser_dir();
    ensure_playwright(&dir);
    let certs = std::env::temp_dir().join(format!("tickcast-dashboard-wss-{}", std::process::id()));
    let d = Daemon::start(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-self-signed",
        certs.to_str().unwrap(),
    ]);
    let port = d.logged_tls_port();
    let spki = d
        .logged_after(&["--ignore-certificate-errors-spki-list="])
        .remove(0);
    let out = Command::new("node")
        .arg(dir.join("wss.mjs"))
        .arg(format!("https://localhost:{port}"))
        .arg(spki)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("live over wss"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&certs);
}
