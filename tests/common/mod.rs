//! Helpers shared by the integration tests: a real server on loopback and a
//! real tungstenite WebSocket client.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tickcast::{Config, Server};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

pub const TIMEOUT: Duration = Duration::from_secs(10);

#[allow(dead_code)]
pub mod book_copy;
#[allow(dead_code)]
pub mod redis;
#[allow(dead_code)]
pub mod reply_cut;
#[allow(dead_code)]
pub mod view;

/// Fails the test, naming the exact command that installs it, unless
/// `program` runs (`scripts/test` installs every tool the tests use).
pub fn require_tool(program: &str, version_arg: &str, install: &str) {
    let runs = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "{program} not found; install it with `{install}` (scripts/test does)"
    );
}

/// A randomized test's seed: `TICKCAST_SEED` if set, else a fresh one,
/// printed so a failing run can be repeated.
pub fn test_seed() -> u64 {
    let seed = std::env::var("TICKCAST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with TICKCAST_SEED={seed})");
    seed
}

pub fn config() -> Config {
    Config::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(2)
}

pub fn server() -> Server {
    Server::start(config()).expect("server starts")
}

/// A subscriber speaking the documented protocol.
#[derive(Debug)]
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub msgpack: bool,
    next_id: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Self::connect_with(addr, None)
    }

    pub fn connect_msgpack(addr: SocketAddr) -> Client {
        Self::connect_with(addr, Some("tickcast.msgpack"))
    }

    pub fn connect_with(addr: SocketAddr, protocol: Option<&str>) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(p) = protocol {
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        let (ws, resp) = tungstenite::client(req, stream).expect("handshake");
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(chosen.as_deref(), protocol);
        Client {
            ws,
            msgpack: protocol == Some("tickcast.msgpack"),
            next_id: 1,
        }
    }

    /// Wraps an already upgraded JSON connection.
    pub fn from_ws(ws: WebSocket<TcpStream>) -> Client {
        Client {
            ws,
            msgpack: false,
            next_id: 1,
        }
    }

    pub fn send(&mut self, cmd: Value) {
        let msg = if self.msgpack {
            Message::binary(rmp_serde::to_vec_named(&cmd).unwrap())
        } else {
            Message::text(cmd.to_string())
        };
        self.ws.send(msg).expect("send");
    }

    /// Sends a command with a fresh id and returns the id.
    pub fn command(&mut self, mut cmd: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        self.send(cmd);
        id
    }

    /// Subscribes and waits for the `subscribed` ack.
    pub fn subscribe(&mut self, topics: &[&str]) {
        let id = self.command(json!({"op": "subscribe", "topics": topics}));
        let ack = self.next_event();
        assert_eq!(ack["event"], "subscribed", "{ack}");
        assert_eq!(ack["id"], id);
    }

    /// The next data message as JSON (MessagePack is decoded to the same shape).
    pub fn next_event(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read event") {
                Message::Text(t) => {
                    assert!(!self.msgpack, "text frame on a msgpack connection");
                    return serde_json::from_str(&t).expect("event is JSON");
                }
                Message::Binary(b) => {
                    assert!(self.msgpack, "binary frame on a JSON connection");
                    return rmp_serde::from_slice(&b).expect("event is MessagePack");
                }
                Message::Close(f) => panic!("unexpected close: {f:?}"),
                _ => {}
            }
        }
    }

    /// The next event, or None when nothing arrives within `wait`.
    pub fn try_next_event(&mut self, wait: Duration) -> Option<Value> {
        self.ws.get_mut().set_read_timeout(Some(wait)).unwrap();
        let r = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => break Some(serde_json::from_str(&t).unwrap()),
                Ok(Message::Binary(b)) => break Some(rmp_serde::from_slice(&b).unwrap()),
                Ok(Message::Close(f)) => panic!("unexpected close: {f:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break None
                }
                Err(e) => panic!("read failed: {e}"),
            }
        };
        self.ws.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
        r
    }

    /// Reads until the server closes; returns the close code and reason.
    pub fn expect_close(&mut self) -> (CloseCode, String) {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(Some(f))) => return (f.code, f.reason.to_string()),
                Ok(Message::Close(None)) => panic!("close without a code"),
                Ok(_) => {}
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
        panic!("no close within {TIMEOUT:?}");
    }
}

/// A raw HTTP exchange: sends `request`, returns everything the server sends
/// until it closes.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Upgrades `/ws` with `token` as a bearer token.
#[allow(dead_code)]
pub fn connect_with_token(addr: SocketAddr, token: &str) -> Result<Client, String> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(Client::from_ws(ws)),
        Err(tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            let body = r
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            Err(format!(
                "{} {}",
                r.status().as_u16(),
                body.unwrap_or_default()
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until `f` holds, polling; panics after the timeout.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raises this process's soft open-file limit to its hard limit: tests with a
/// thousand clients hold both ends of every connection.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Runs `cmd` to its end and returns what it printed; a failure shows what
/// it said on stderr.
#[allow(dead_code)]
#[track_caller]
pub fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the daemon if a test failed before stopping it, so no process is left behind.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `tickcastd` process started by a test.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `tickcastd` with `args` and waits for its "listening on" log line.
    pub fn start(args: &[&str]) -> Daemon {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_tickcastd")).args(args))
    }

    /// The same, with the open-files limit lowered to `nofile` (through
    /// `sh`'s `ulimit`, which then execs the daemon: same process).
    #[allow(dead_code)]
    pub fn start_with_fd_limit(nofile: u32, args: &[&str]) -> Daemon {
        let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
        Self::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(env!("CARGO_BIN_EXE_tickcastd"))
                .args(args),
        )
    }

    /// Starts a daemon from a prepared command (its own environment, say).
    #[allow(dead_code)]
    pub fn spawn_command(cmd: &mut Command) -> Daemon {
        Self::spawn(cmd)
    }

    fn spawn(cmd: &mut Command) -> Daemon {
        let child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn tickcastd");
        let (tx, rx) = mpsc::channel();
        // Owned by a Daemon from here on, so a failed start kills it too.
        let mut d = Daemon {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines: rx,
        };
        let stderr = d.child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        while addr.is_none() {
            let line = d.lines.recv_timeout(TIMEOUT).expect("startup log line");
            if let Some(rest) = line.split(" listening on ").nth(1) {
                addr = Some(
                    rest.split(':')
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(":")
                        .parse()
                        .unwrap(),
                );
            }
        }
        d.addr = addr.unwrap();
        d
    }

    /// Reads the log until each of `markers` has appeared, and returns the
    /// word after each (up to a space), in `markers`' order.
    pub fn logged_after(&self, markers: &[&str]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; markers.len()];
        while found.iter().any(Option::is_none) {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("the daemon never logged all of {markers:?}"));
            for (marker, slot) in markers.iter().zip(found.iter_mut()) {
                if let Some(rest) = line.split(marker).nth(1) {
                    let word = rest.split(' ').next().unwrap_or_default();
                    *slot = Some(word.to_string());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// The `wss://` port the daemon logged (`TLS: wss://127.0.0.1:PORT/ws`).
    pub fn logged_tls_port(&self) -> u16 {
        let word = &self.logged_after(&["TLS: wss://127.0.0.1:"])[0];
        word.split('/').next().unwrap().parse().expect("a port")
    }

    /// Every log line not read yet, up to the daemon's exit (the reader
    /// thread may still be passing on the last lines when `wait` returns).
    pub fn rest_of_log(&self) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => out.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the log did not end: {out:?}"),
            }
        }
    }

    /// Reads the log until a line containing `needle`, and returns it.
    #[allow(dead_code)]
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no log line with {needle:?} ({e}); seen: {seen:?}"),
            }
        }
    }

    /// Sends `signal` to the daemon.
    #[allow(dead_code)]
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn sigterm(&mut self) -> i32 {
        let d = self;
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(d.child.id() as i32, libc::SIGTERM);
        }
        let status = d.child.wait().unwrap();
        status.code().expect("exited, not killed by a signal")
    }
}

/// One unlabelled sample of the server's Prometheus page.
pub fn metric(server: &Server, name: &str) -> f64 {
    let text = server.metrics_text();
    text.lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

/// A daemon's Prometheus page, fetched over HTTP.
#[allow(dead_code)]
pub fn metrics_page(addr: SocketAddr) -> String {
    http_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// One unlabelled sample of a daemon's Prometheus page, if it has it.
#[allow(dead_code)]
pub fn metric_at(addr: SocketAddr, name: &str) -> Option<f64> {
    metrics_page(addr)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A process's resident memory (VmRSS), in bytes.
#[allow(dead_code)]
pub fn rss_bytes(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024.0
}

/// The sample of a metric labelled `{reason="<reason>"}`.
#[allow(dead_code)]
pub fn metric_labeled(server: &Server, name: &str, reason: &str) -> f64 {
    let prefix = format!("{name}{{reason=\"{reason}\"}} ");
    let text = server.metrics_text();
    let line = text.lines().find(|l| l.starts_with(&prefix));
    line.and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {prefix}"))
        .parse()
        .unwrap()
}

/// A network publisher's raw WebSocket on `/publish`, authenticated with `token`.
pub fn raw_publisher(addr: SocketAddr, token: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("ws://{addr}/publish")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    tungstenite::client(req, stream)
        .expect("publisher handshake")
        .0
}

/// The next event a raw publisher receives, `interest` events left out
/// (a subscriber's subscriptions make them; `next_any_publisher_event`
/// reads those too).
pub fn next_publisher_event(ws: &mut WebSocket<TcpStream>) -> tickcast::publish::PublisherEvent {
    loop {
        let e = next_any_publisher_event(ws);
        if !matches!(e, tickcast::publish::PublisherEvent::Interest { .. }) {
            return e;
        }
    }
}

/// The next event a raw publisher receives, whatever it is.
pub fn next_any_publisher_event(
    ws: &mut WebSocket<TcpStream>,
) -> tickcast::publish::PublisherEvent {
    loop {
        if let Message::Binary(b) = ws.read().unwrap() {
            return rmp_serde::from_slice(&b).unwrap();
        }
    }
}

/// The next `error` event a raw publisher receives, skipping acks.
pub fn next_error(ws: &mut WebSocket<TcpStream>) -> tickcast::publish::PublisherEvent {
    loop {
        let ev = next_publisher_event(ws);
        if matches!(ev, tickcast::publish::PublisherEvent::Error { .. }) {
            return ev;
        }
    }
}
