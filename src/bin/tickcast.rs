//! `tickcast`: a command-line client for a tickcast server.
//!
//! ```text
//! tickcast sub ws://127.0.0.1:8080/ws 'FX.*' BTC-USD      # live table, like top
//! tickcast sub ws://127.0.0.1:8080/ws '*' --json | jq .   # one event per line
//! tickcast sub ws://127.0.0.1:8080/ws BTC-USD --json --count 5   # stop after 5 values
//! tickcast pub ws://127.0.0.1:8080/publish --token demo-publisher AAPL bid=189.5 ask=189.6
//! tickcast pub ws://127.0.0.1:8080/publish --token demo-publisher --clear AAPL
//! ```
//!
//! The table is redrawn in place on a terminal; when the output is not a
//! terminal it is printed plainly, once a second (like `top -b`).

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tickcast::{RemoteConfig, RemotePublisher, Update};
use tungstenite::Message;

#[derive(Parser)]
#[command(
    name = "tickcast",
    version,
    about = "Subscribe to and publish into a tickcast server"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Subscribe and show a live table of topics (or, with --json, every event).
    Sub(Sub),
    /// Publish one update, or clear a topic, over /publish.
    Pub(Pub),
}

#[derive(Args)]
struct Conn {
    /// Subscriber or publisher token (Authorization: Bearer).
    #[arg(long, env = "TICKCAST_TOKEN")]
    token: Option<String>,
    /// PEM file of the authorities to trust for wss:// (default: the system's).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

#[derive(Args)]
struct Sub {
    /// ws://host:port/ws or wss://host:port/ws
    url: String,
    /// Topics and patterns (FX.*, BTC-USD); default: everything.
    #[arg(default_value = "*")]
    topics: Vec<String>,
    /// Print every event as one JSON line instead of the table.
    #[arg(long)]
    json: bool,
    /// At most this many events per topic per second (the server merges the rest).
    #[arg(long, value_name = "N")]
    max_rate: Option<f64>,
    /// Stop after this many values (snapshots and updates).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long = "for", value_name = "SECONDS")]
    for_secs: Option<f64>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Args)]
struct Pub {
    /// ws://host:port/publish or wss://host:port/publish
    url: String,
    /// The topic.
    topic: String,
    /// Fields as name=value: bid, ask, last, bid_size, ask_size, last_size, volume.
    fields: Vec<String>,
    /// Clear the topic instead of publishing an update.
    #[arg(long, conflicts_with = "fields")]
    clear: bool,
    /// Leave the topic live when this command disconnects (by default the
    /// server marks a departed publisher's topics stale).
    #[arg(long)]
    keep_live: bool,
    #[command(flatten)]
    conn: Conn,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Sub(s) => subscribe(s),
        Cmd::Pub(p) => publish(p),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickcast: {e}");
            ExitCode::from(1)
        }
    }
}

type Failure = Box<dyn std::error::Error>;

fn remote_config(url: &str, conn: &Conn) -> RemoteConfig {
    let mut cfg = RemoteConfig::new(url, conn.token.clone().unwrap_or_default());
    if let Some(ca) = &conn.ca {
        cfg = cfg.tls_ca_file(ca);
    }
    cfg
}

fn publish(p: Pub) -> Result<(), Failure> {
    let token = p.conn.token.as_deref().unwrap_or_default();
    if token.is_empty() {
        return Err("publishing needs --token (a publisher token of the server)".into());
    }
    let mut update = Update::new(&p.topic);
    for f in &p.fields {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| format!("{f:?} is not name=value"))?;
        let v: f64 = value
            .parse()
            .map_err(|_| format!("{name}: {value:?} is not a number"))?;
        update = match name {
            "bid" => update.bid(v),
            "ask" => update.ask(v),
            "last" => update.last(v),
            "bid_size" => update.bid_size(v),
            "ask_size" => update.ask_size(v),
            "last_size" => update.last_size(v),
            "volume" => update.volume(v),
            other => return Err(format!("unknown field {other:?}; fields are bid, ask, last, bid_size, ask_size, last_size, volume").into()),
        };
    }
    if !p.clear && p.fields.is_empty() {
        return Err("give fields (bid=1.5 ...) or --clear".into());
    }
    if url_path(&p.url) == "/ws" {
        return Err(format!(
            "{} is the subscriber endpoint; publish on /publish ({})",
            p.url,
            p.url.replace("/ws", "/publish")
        )
        .into());
    }
    let cfg = remote_config(&p.url, &p.conn).keep_live_on_leave(p.keep_live);
    let publisher = RemotePublisher::connect(cfg)?;
    if p.clear {
        publisher.clear(&p.topic)?;
    } else {
        publisher.publish(update)?;
    }
    publisher.flush(Duration::from_secs(10))?;
    if publisher.lost() > 0 {
        return Err("the server refused the update".into());
    }
    publisher.close();
    println!(
        "{}: {}",
        p.topic,
        if p.clear { "cleared" } else { "published" }
    );
    Ok(())
}

/// The path of a ws:// URL ("/" when it has none), without its query.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

/// What the table shows of one topic.
#[derive(Default)]
struct Row {
    fields: Map<String, Value>,
    seq: u64,
    stale: bool,
    changed: Option<Instant>,
}

/// The price fields, by their names on the wire.
const FIELDS: [&str; 7] = tickcast::Prices::NAMES;

fn subscribe(s: Sub) -> Result<(), Failure> {
    if url_path(&s.url) == "/publish" {
        let to = s.url.replace("/publish", "/ws");
        return Err(format!(
            "{} is the publisher endpoint; subscribe on /ws ({to})",
            s.url
        )
        .into());
    }
    let mut ws = tickcast::remote::connect_websocket(&remote_config(&s.url, &s.conn))?;
    let mut cmd = json!({"op": "subscribe", "id": 1, "topics": s.topics});
    if let Some(r) = s.max_rate {
        cmd["max_rate"] = json!(r);
    }
    ws.send(Message::text(cmd.to_string()))?;
    // Short reads, so the table redraws while the feed is quiet.
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut out = std::io::stdout().lock();
    let mut screen = Screen::new(out.is_terminal());
    let started = Instant::now();
    let mut values = 0u64;
    loop {
        let done = s.count.is_some_and(|n| values >= n)
            || s.for_secs
                .is_some_and(|t| started.elapsed().as_secs_f64() >= t);
        if done {
            if !s.json {
                draw(&mut out, &s.url, &rows, false)?;
            }
            return Ok(());
        }
        let Some(t) = next_text(&mut ws)? else {
            if !s.json {
                screen.maybe_draw(&mut out, &s.url, &rows)?;
            }
            continue;
        };
        let ev: Value = serde_json::from_str(&t)?;
        if matches!(ev["event"].as_str(), Some("snapshot" | "update")) {
            values += 1;
        }
        if s.json {
            // A closed pipe (| head) ends the program quietly.
            if writeln!(out, "{t}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
        } else {
            apply(&mut rows, &ev);
            screen.maybe_draw(&mut out, &s.url, &rows)?;
        }
        // A refused subscribe (bad topic, forbidden...) ends the program
        // with status 1 in both modes, after --json has printed the event.
        if ev["event"] == "error" {
            return Err(format!("{}: {}", ev["code"], ev["message"]).into());
        }
    }
}

/// The next text message, or None when the read timed out (quiet feed).
fn next_text(
    ws: &mut tungstenite::WebSocket<tickcast::remote::Stream>,
) -> Result<Option<String>, Failure> {
    match ws.read() {
        Ok(Message::Text(t)) => Ok(Some(t.to_string())),
        Ok(Message::Close(f)) => Err(format!("server closed the connection: {f:?}").into()),
        Ok(_) => Ok(None),
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// When the table is drawn: four times a second in place on a terminal,
/// once a second as plain text otherwise (a log, a pipe).
struct Screen {
    terminal: bool,
    last: Instant,
}

impl Screen {
    fn new(terminal: bool) -> Self {
        let last = Instant::now() - Duration::from_secs(2);
        Screen { terminal, last }
    }

    fn maybe_draw(
        &mut self,
        out: &mut impl Write,
        url: &str,
        rows: &BTreeMap<String, Row>,
    ) -> std::io::Result<()> {
        let every = Duration::from_millis(if self.terminal { 250 } else { 1000 });
        if self.last.elapsed() < every {
            return Ok(());
        }
        self.last = Instant::now();
        draw(out, url, rows, self.terminal)
    }
}

/// Keeps each topic's value as PROTOCOL.md says a client should.
fn apply(rows: &mut BTreeMap<String, Row>, ev: &Value) {
    let Some(topic) = ev["topic"].as_str() else {
        return;
    };
    let row = rows.entry(topic.to_string()).or_default();
    match ev["event"].as_str().unwrap_or("") {
        "snapshot" | "update" => {
            if ev["event"] == "snapshot" {
                row.fields.clear();
                row.stale = ev["stale"].as_bool().unwrap_or(false);
            }
            for f in FIELDS {
                if let Some(v) = ev.get(f) {
                    row.fields.insert(f.into(), v.clone());
                }
            }
            row.seq = ev["seq"].as_u64().unwrap_or(row.seq);
            row.changed = Some(Instant::now());
        }
        "status" => row.stale = ev["state"] == "stale",
        "cleared" => *row = Row::default(),
        _ => {}
    }
}

/// Draws the whole table: in place on a terminal (ANSI: cursor home, clear
/// screen), else as plain lines followed by a blank one.
fn draw(
    out: &mut impl Write,
    url: &str,
    rows: &BTreeMap<String, Row>,
    terminal: bool,
) -> std::io::Result<()> {
    let mut s = String::with_capacity(4096);
    if terminal {
        s.push_str("\x1b[H\x1b[2J");
    }
    s.push_str(&format!(
        "tickcast  {url}  {} topics{}\n\n",
        rows.len(),
        if terminal { "  (Ctrl-C to quit)" } else { "" }
    ));
    s.push_str(&format!(
        "{:<16} {:>14} {:>14} {:>14} {:>14} {:>10} {:>8}  {}\n",
        "TOPIC", "BID", "ASK", "LAST", "VOLUME", "SEQ", "AGE", "STATE"
    ));
    let num = |r: &Row, f: &str| {
        r.fields
            .get(f)
            .and_then(Value::as_f64)
            .map_or(String::new(), |v| format!("{v}"))
    };
    for (topic, r) in rows {
        let age = r.changed.map_or(String::new(), |c| {
            format!("{:.1}s", c.elapsed().as_secs_f64())
        });
        s.push_str(&format!(
            "{:<16} {:>14} {:>14} {:>14} {:>14} {:>10} {:>8}  {}\n",
            topic,
            num(r, "bid"),
            num(r, "ask"),
            num(r, "last"),
            num(r, "volume"),
            r.seq,
            age,
            if r.stale { "stale" } else { "" }
        ));
    }
    if !terminal {
        s.push('\n');
    }
    out.write_all(s.as_bytes())?;
    out.flush()
}
