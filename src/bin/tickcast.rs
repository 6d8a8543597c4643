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
use serde_json::json;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tickcast::remote::subscriber::{Event, SubscribeOptions};
use tickcast::{RemoteConfig, RemotePublisher, Subscriber, SubscriberConfig, Update};

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

fn subscribe(s: Sub) -> Result<(), Failure> {
    if url_path(&s.url) == "/publish" {
        let to = s.url.replace("/publish", "/ws");
        return Err(format!(
            "{} is the publisher endpoint; subscribe on /ws ({to})",
            s.url
        )
        .into());
    }
    let mut cfg = SubscriberConfig::new(&s.url).token(s.conn.token.clone().unwrap_or_default());
    if let Some(ca) = &s.conn.ca {
        cfg = cfg.tls_ca_file(ca);
    }
    let mut sub = Subscriber::connect(cfg)?;
    let mut out = std::io::stdout().lock();
    let options = SubscribeOptions {
        max_rate: s.max_rate,
        depth: None,
    };
    let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
    if let Err(e) = sub.subscribe(&topics, Some(options)) {
        // A refused subscribe ends the program with status 1 in both
        // modes, after --json has printed it as the server's event.
        if let (tickcast::Error::Command { code, message }, true) = (&e, s.json) {
            let ev = json!({"event": "error", "id": 1, "code": code, "message": message});
            let _ = writeln!(out, "{ev}");
        }
        return Err(e.into());
    }
    if s.json {
        let ack = json!({"event": "subscribed", "id": 1, "topics": s.topics});
        if writeln!(out, "{ack}").is_err() {
            return Ok(());
        }
    }
    stream(&s, &mut sub, &mut out)
}

/// `1234567` as `1.2 MB`: what a person reads at a glance.
fn human_bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{n} B"),
        10_000..=9_999_999 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// Prints events (--json) or keeps the table drawn until --count values
/// or --for seconds, an error, or a closed pipe.
fn stream(s: &Sub, sub: &mut Subscriber, out: &mut impl Write) -> Result<(), Failure> {
    let mut screen = Screen::new(std::io::stdout().is_terminal());
    let started = Instant::now();
    let mut values = 0u64;
    loop {
        let done = s.count.is_some_and(|n| values >= n)
            || s.for_secs
                .is_some_and(|t| started.elapsed().as_secs_f64() >= t);
        if done {
            if !s.json {
                screen.draw(out, &s.url, sub)?;
            }
            return Ok(());
        }
        let Some(got) = sub.next(Duration::from_millis(100))? else {
            if !s.json {
                screen.maybe_draw(out, &s.url, sub)?;
            }
            continue;
        };
        if let Event::Snapshot { topic, .. } | Event::Update { topic, .. } = &got.event {
            values += 1;
            screen.changed.insert(topic.clone(), Instant::now());
        }
        if s.json {
            // A closed pipe (| head) ends the program quietly.
            if writeln!(out, "{}", got.wire)
                .and_then(|()| out.flush())
                .is_err()
            {
                return Ok(());
            }
        } else {
            screen.maybe_draw(out, &s.url, sub)?;
        }
        if let Event::Error { code, message } = &got.event {
            return Err(format!("{code}: {message}").into());
        }
    }
}

/// The table: drawn four times a second in place on a terminal, once a
/// second as plain text otherwise (a log, a pipe); with when each topic
/// last changed.
struct Screen {
    terminal: bool,
    last: Instant,
    changed: HashMap<String, Instant>,
}

impl Screen {
    fn new(terminal: bool) -> Self {
        let last = Instant::now() - Duration::from_secs(2);
        let changed = HashMap::new();
        Screen {
            terminal,
            last,
            changed,
        }
    }

    fn maybe_draw(
        &mut self,
        out: &mut impl Write,
        url: &str,
        sub: &Subscriber,
    ) -> std::io::Result<()> {
        let every = Duration::from_millis(if self.terminal { 250 } else { 1000 });
        if self.last.elapsed() < every {
            return Ok(());
        }
        self.last = Instant::now();
        self.draw(out, url, sub)
    }

    /// Draws the whole table: in place on a terminal (ANSI: cursor home,
    /// clear screen), else as plain lines followed by a blank one.
    fn draw(&self, out: &mut impl Write, url: &str, sub: &Subscriber) -> std::io::Result<()> {
        let mut topics: Vec<&str> = sub.topics().collect();
        topics.sort_unstable();
        let mut s = String::with_capacity(4096);
        if self.terminal {
            s.push_str("\x1b[H\x1b[2J");
        }
        let quit = if self.terminal {
            "  (Ctrl-C to quit)"
        } else {
            ""
        };
        s.push_str(&format!(
            "tickcast  {url}  {} topics  {} received{quit}\n\n",
            topics.len(),
            human_bytes(sub.bytes_received())
        ));
        s.push_str(&format!(
            "{:<16} {:>14} {:>14} {:>14} {:>14} {:>10} {:>8}  {}\n",
            "TOPIC", "BID", "ASK", "LAST", "VOLUME", "SEQ", "AGE", "STATE"
        ));
        for topic in topics {
            let Some(v) = sub.value(topic) else { continue };
            let num = |f: &str| v.fields.get(f).map_or(String::new(), |x| format!("{x}"));
            let age = self.changed.get(topic).map_or(String::new(), |c| {
                format!("{:.1}s", c.elapsed().as_secs_f64())
            });
            s.push_str(&format!(
                "{:<16} {:>14} {:>14} {:>14} {:>14} {:>10} {:>8}  {}\n",
                topic,
                num("bid"),
                num("ask"),
                num("last"),
                num("volume"),
                v.seq,
                age,
                if v.stale { "stale" } else { "" }
            ));
        }
        if !self.terminal {
            s.push('\n');
        }
        out.write_all(s.as_bytes())?;
        out.flush()
    }
}
