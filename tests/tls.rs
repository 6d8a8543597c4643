//! `wss://` with rustls, driven by the shard's non-blocking loop: a TLS
//! subscriber gets snapshot and updates; garbage or plain text on the TLS port
//! closes only that connection.

mod common;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use tickcast::{Server, Update};
use tungstenite::Message;

/// A certificate for "localhost", made now, written as PEM files.
fn make_cert() -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "tickcast-tls-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let der = CertificateDer::from_pem_file(&cert).unwrap();
    (cert, key, der)
}

/// A name no other test of this process uses: tests run on parallel
/// threads, and two that read the clock in the same tick shared a
/// directory (one read the other's half-written certificate: "NoItemsFound").
fn rand_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (std::process::id() as u64) << 32 | n
}

fn tls_server() -> (Server, CertificateDer<'static>) {
    let (cert, key, der) = make_cert();
    let server = Server::start(config().tls("127.0.0.1:0".parse().unwrap(), cert, key)).unwrap();
    (server, der)
}

type TlsWs = tungstenite::WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

fn wss_client(server: &Server, ca: &CertificateDer<'static>) -> TlsWs {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = server.tls_addr().expect("TLS listener");
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let stream = rustls::StreamOwned::new(conn, tcp);
    let (ws, _) = tungstenite::client(format!("wss://localhost:{}/ws", addr.port()), stream)
        .expect("wss handshake");
    ws
}

fn next_json(ws: &mut TlsWs) -> serde_json::Value {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[test]
fn a_wss_subscriber_gets_snapshot_and_updates() {
    let (server, ca) = tls_server();
    let p = server.publisher();
    p.publish(Update::new("TLS.A").bid(1.0).ask(2.0)).unwrap();
    wait_until("topic", || server.snapshot("TLS.A").is_some());
    let mut ws = wss_client(&server, &ca);
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["TLS.*"]}"#,
    ))
    .unwrap();
    assert_eq!(next_json(&mut ws)["event"], "subscribed");
    let snap = next_json(&mut ws);
    assert_eq!(
        (snap["event"].as_str(), snap["seq"].as_u64()),
        (Some("snapshot"), Some(1))
    );
    // Enough to need many TLS records and socket writes.
    for i in 0..3000 {
        p.publish(Update::new("TLS.A").bid(i as f64)).unwrap();
    }
    for want in 2..=3001u64 {
        assert_eq!(next_json(&mut ws)["seq"].as_u64(), Some(want));
    }
}

#[test]
fn plain_text_or_garbage_on_the_tls_port_closes_only_that_connection() {
    let (server, ca) = tls_server();
    let mut good = wss_client(&server, &ca);
    good.send(Message::text(r#"{"op":"subscribe","id":1,"topics":["K"]}"#))
        .unwrap();
    assert_eq!(next_json(&mut good)["event"], "subscribed");
    let addr = server.tls_addr().unwrap();
    for junk in [
        &b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"\x16\x03\x01\x00\x05hello"[..],
        &[0u8; 300][..],
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        if junk.starts_with(b"GET ") {
            // A plain-text client is told, in plain text, to use wss://.
            let text = String::from_utf8_lossy(&buf);
            assert!(text.starts_with("HTTP/1.1 400"), "{text}");
            assert!(
                text.ends_with("this port speaks TLS: use wss:// (or https://) instead of ws://\n"),
                "{text}"
            );
        } else {
            // At most a TLS alert, then the connection closes.
            assert!(buf.len() < 64, "no HTTP answer to TLS garbage: {buf:?}");
        }
    }
    // Meanwhile the TLS subscriber was not disturbed.
    server
        .publisher()
        .publish(Update::new("K").bid(5.0))
        .unwrap();
    let ev = next_json(&mut good);
    assert_eq!(
        (ev["topic"].as_str(), ev["bid"].as_f64()),
        (Some("K"), Some(5.0))
    );
    // Plain ws:// keeps working beside wss://.
    let mut plain = Client::connect(server.local_addr());
    plain.subscribe(&["K"]);
    assert_eq!(plain.next_event()["event"], "snapshot");
}

#[test]
fn tls_configuration_errors_are_clear() {
    let (cert, key, _) = make_cert();
    let missing = Server::start(config().tls(
        "127.0.0.1:0".parse().unwrap(),
        "/nonexistent.pem",
        key.clone(),
    ));
    assert!(
        matches!(&missing, Err(tickcast::Error::Tls(e)) if e.to_string().contains("/nonexistent.pem")),
        "{:?}",
        missing.err()
    );
    let swapped = Server::start(config().tls("127.0.0.1:0".parse().unwrap(), key, cert));
    assert!(
        matches!(swapped, Err(tickcast::Error::Tls(_))),
        "{:?}",
        swapped.err()
    );
}

#[test]
fn a_remote_publisher_publishes_over_wss() {
    let (cert, key, ca) = make_cert();
    let server = Server::start(
        config()
            .tls("127.0.0.1:0".parse().unwrap(), cert.clone(), key)
            .publisher_tokens(vec!["tls-publisher-1".into()]),
    )
    .unwrap();
    let mut ws = wss_client(&server, &ca);
    ws.send(Message::text(r#"{"op":"subscribe","id":1,"topics":["W"]}"#))
        .unwrap();
    assert_eq!(next_json(&mut ws)["event"], "subscribed");
    let url = format!(
        "wss://localhost:{}/publish",
        server.tls_addr().unwrap().port()
    );
    let p = tickcast::RemotePublisher::connect(
        tickcast::RemoteConfig::new(url, "tls-publisher-1").tls_ca_file(cert),
    )
    .unwrap();
    for i in 0..500 {
        p.publish(Update::new("W").bid(i as f64)).unwrap();
    }
    p.flush(TIMEOUT).unwrap();
    for want in 1..=500u64 {
        assert_eq!(next_json(&mut ws)["seq"].as_u64(), Some(want));
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tls_only_serves_wss_and_nothing_in_clear_text() {
    let (cert, key, ca) = make_cert();
    let plain_port = free_port();
    let server = Server::start(
        config()
            .listen(format!("127.0.0.1:{plain_port}").parse().unwrap())
            .tls("127.0.0.1:0".parse().unwrap(), cert, key)
            .plain(false),
    )
    .unwrap();
    assert_eq!(Some(server.local_addr()), server.tls_addr());
    let refused = TcpStream::connect(("127.0.0.1", plain_port));
    assert!(refused.is_err(), "the plain port must not be bound");

    server
        .publisher()
        .publish(Update::new("ONLY").bid(1.0))
        .unwrap();
    let mut ws = wss_client(&server, &ca);
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["ONLY"]}"#,
    ))
    .unwrap();
    assert_eq!(next_json(&mut ws)["event"], "subscribed");
    assert_eq!(next_json(&mut ws)["bid"].as_f64(), Some(1.0));

    // Without TLS, turning plain off leaves nothing to listen on: refused.
    let nothing = Server::start(config().plain(false));
    assert!(
        matches!(&nothing, Err(tickcast::Error::InvalidConfig(m)) if m.to_string().contains("nothing would listen")),
        "{:?}",
        nothing.err()
    );
}

#[test]
fn the_daemon_serves_tls_only_with_the_flag() {
    let (cert, key, ca) = make_cert();
    let plain_port = free_port();
    let mut d = Daemon::start(&[
        "--listen",
        &format!("127.0.0.1:{plain_port}"),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-only",
    ]);
    assert_ne!(
        d.addr.port(),
        plain_port,
        "the logged address is the TLS one"
    );
    assert!(TcpStream::connect(("127.0.0.1", plain_port)).is_err());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tls = rustls::StreamOwned::new(
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap(),
        TcpStream::connect(d.addr).unwrap(),
    );
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = tls.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert_eq!(d.sigterm(), 0);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args(["--tls-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a config error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing would listen"), "{err}");
}

/// A self-signed certificate made with `params`, written as PEM files.
fn cert_files(params: rcgen::CertificateParams, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let dir = std::env::temp_dir().join(format!("tickcast-tls-{name}-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn check_config(cert: &std::path::Path, key: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tickcastd"))
        .args([
            "--check-config",
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
        ])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .output()
        .unwrap()
}

#[test]
fn check_config_refuses_certificates_every_client_refuses_and_says_how_to_fix_them() {
    let mut ca = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let no_san = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    for (params, name, says) in [
        (ca, "ca", "CaUsedAsEndEntity"),
        (no_san, "nosan", "it has no subjectAltName"),
    ] {
        let (cert, key) = cert_files(params, name);
        let out = check_config(&cert, &key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(
            err.contains("subjectAltName=DNS:<host>"),
            "{name}: says how: {err}"
        );
        assert!(
            err.contains(cert.to_str().unwrap()),
            "{name}: names the file: {err}"
        );
    }
    let (cert, key, _) = make_cert();
    let out = check_config(&cert, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "the flags: ok\n");
}

#[test]
fn the_cli_names_tls_mistakes_a_missing_ca_file_and_the_wrong_scheme() {
    let (ca_cert, key, _) = make_cert();
    let server =
        Server::start(config().tls("127.0.0.1:0".parse().unwrap(), ca_cert.clone(), key)).unwrap();
    let tls = server.tls_addr().unwrap();
    let plain = server.local_addr();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&[
        "sub",
        &format!("wss://localhost:{}/ws", tls.port()),
        "--ca",
        "/missing.pem",
    ]);
    assert!(
        err.contains("/missing.pem") && err.contains("no such file"),
        "{err}"
    );
    let err = run(&["sub", &format!("ws://{tls}/ws")]);
    assert!(err.contains("this port speaks TLS: use wss://"), "{err}");
    let err = run(&[
        "sub",
        &format!("wss://localhost:{}/ws", plain.port()),
        "--ca",
        ca_cert.to_str().unwrap(),
    ]);
    assert!(err.contains("did not answer in TLS"), "{err}");
    // Trusted, but for another name than the one dialled.
    let err = run(&[
        "sub",
        &format!("wss://127.0.0.1:{}/ws", tls.port()),
        "--ca",
        ca_cert.to_str().unwrap(),
    ]);
    assert!(err.contains("subjectAltName"), "{err}");
}

/// `tickcastd --tls-self-signed`, started as a new user would: it logs where
/// its authority's certificate is, and `tickcast sub --ca`, the JS client in
/// Node (NODE_EXTRA_CA_CERTS) and the Python client (`ca_file`, and its
/// live view's `--ca`) all subscribe over `wss://localhost` trusting it.
#[test]
fn tls_self_signed_serves_wss_that_every_client_trusts_through_its_ca_file() {
    let dir = std::env::temp_dir().join(format!("tickcast-selfsigned-{}", rand_suffix()));
    let d = Daemon::start(&[
        "--demo",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-self-signed",
        dir.to_str().unwrap(),
    ]);
    let port = d.logged_tls_port();
    let ca_logged = d.logged_after(&["its authority is "]).pop();
    let ca = dir.join("ca.pem");
    assert_eq!(
        ca_logged.as_deref(),
        ca.to_str(),
        "the log names the CA file"
    );
    let url = format!("wss://localhost:{port}/ws");

    let printed = succeeds(
        std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["sub", &url, "BTC-USD", "--json", "--count", "2", "--ca"])
            .arg(&ca),
    );
    // A snapshot, or an update if the demo had not reached BTC-USD yet.
    assert!(printed.contains("\"topic\":\"BTC-USD\""), "{printed}");
    // Without the CA: refused, with the hint.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args([
            "sub",
            &url,
            "BTC-USD",
            "--count",
            "1",
            "--ca",
            "/etc/ssl/certs/ca-certificates.crt",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("--ca FILE"), "{err}");

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    require_tool("node", "--version", "sudo apt-get install -y nodejs");
    let script = format!(
        "import WebSocket from '{}';\n\
         import {{ Client }} from '{}';\n\
         const c = new Client('{url}', {{ WebSocket }});\n\
         for (const kind of ['snapshot', 'update']) c.on(kind, (ev) => {{ console.log('value', ev.topic); process.exit(0); }});\n\
         await c.connect();\n\
         await c.subscribe(['BTC-USD']);\n\
         setTimeout(() => process.exit(3), 10000);\n",
        root.join("clients/js/node_modules/ws/wrapper.mjs")
            .display(),
        root.join("clients/js/src/index.js").display()
    );
    let js = dir.join("wss.mjs");
    std::fs::write(&js, script).unwrap();
    let out = std::process::Command::new("node")
        .arg(&js)
        .current_dir(root.join("clients/js"))
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("value BTC-USD"),
        "node over wss: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let python = root.join("target/pyenv/bin/python");
    assert!(python.exists(), "target/pyenv is missing: run scripts/test");
    let printed = succeeds(
        std::process::Command::new(&python)
            .args([
                "-m",
                "tickcast_client",
                &url,
                "BTC-USD",
                "--json",
                "--for",
                "1.5",
                "--ca",
            ])
            .arg(&ca)
            .env("PYTHONPATH", root.join("clients/python")),
    );
    assert!(printed.contains("\"topic\": \"BTC-USD\""), "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}
