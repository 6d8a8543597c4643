//! A blocking subscriber for Rust programs (the counterpart of
//! [`RemotePublisher`](crate::RemotePublisher)): subscribe and unsubscribe
//! with their acknowledgements, the merged value of every topic and the
//! levels of every book (each checksum verified), gaps found from `seq` and
//! `conflated`, and, on a gap or a dropped connection, a reconnect that
//! subscribes everything again with `since`, so the server sends just what
//! was missed while its history holds it. JSON or MessagePack; `wss://`
//! with a CA file. One thread drives it: calls block, each with a timeout.
//!
//! ```no_run
//! use std::time::Duration;
//! use tickcast::{Subscriber, SubscriberConfig};
//!
//! let mut sub = Subscriber::connect(SubscriberConfig::new("ws://127.0.0.1:8080/ws"))?;
//! sub.subscribe(&["BTC-USD", "FX.*"], None)?;
//! while let Some(got) = sub.next(Duration::from_secs(1))? {
//!     if let Some(v) = got.topic().and_then(|t| sub.value(t)) {
//!         println!("{:?} {:?}", got.event, v.fields);
//!     }
//! }
//! # Ok::<(), tickcast::Error>(())
//! ```

mod state;

pub use state::{BookValue, TopicValue};

use super::config::RemoteConfig;
use super::stream::{self, Ws};
use crate::error::{Error, Result};
use crate::model::format::Format;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// Settings of a [`Subscriber`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriberConfig {
    /// `ws://host:port/ws` or `wss://host:port/ws`.
    pub url: String,
    /// A subscriber token, when the server wants one (empty: none).
    pub token: String,
    /// JSON (default) or MessagePack frames.
    pub format: Format,
    /// For `wss://`: PEM file of the authorities to trust (default: the
    /// system's).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Reconnect (and resume) after a dropped connection or a gap. Default true.
    pub reconnect: bool,
    /// Limit for each connect and for each command's acknowledgement. Default 5 s.
    pub timeout: Duration,
}

impl SubscriberConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SubscriberConfig {
            url: url.into(),
            token: String::new(),
            format: Format::Json,
            tls_ca_file: None,
            reconnect: true,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sets the subscriber token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Sets the wire format.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Sets the CA file for `wss://`.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Turns reconnecting on or off.
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }
}

/// What an event was, after it was applied to the values and books. In
/// every variant `topic` is the topic, `seq` the event's sequence number
/// and `conflated` how many published updates it stands for.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // the fields, named alike in every variant, are above
pub enum Event {
    /// A `subscribe` was acknowledged.
    Subscribed,
    /// An `unsubscribe` was acknowledged.
    Unsubscribed,
    /// A topic's whole value (after a subscribe, a resync or a clear).
    Snapshot { topic: String, seq: u64 },
    /// Changed fields, merged into the value; `conflated` updates it stands for.
    Update {
        topic: String,
        seq: u64,
        conflated: u64,
    },
    /// A book's levels, whole.
    Book { topic: String, seq: u64 },
    /// Changed levels, applied to the book and checked against the checksum.
    BookUpdate {
        topic: String,
        seq: u64,
        conflated: u64,
    },
    /// The topic went stale (its publisher left, or it has been quiet) or live.
    Status { topic: String, stale: bool },
    /// A publisher cleared the topic; its value is gone.
    Cleared { topic: String },
    /// `seq` moved by other than `conflated`, or a book's checksum did not
    /// match: the subscriber reconnects and resumes (when `reconnect` is on).
    Gap {
        topic: String,
        expected: u64,
        got: u64,
    },
    /// Connected again after a drop or a gap; these topics were resumed from
    /// the server's history (the others came as snapshots).
    Reconnected { recovered: Vec<String> },
    /// The server refused something (`code` as in docs/PROTOCOL.md).
    Error { code: String, message: String },
    /// Anything else (`pong`, `topics`, trades' events…): see the wire form.
    Other,
}

/// One event as it came and what it was.
#[derive(Debug, Clone)]
pub struct Received {
    /// What it was, once applied.
    pub event: Event,
    /// The event as the server sent it (MessagePack shown as JSON).
    pub wire: Json,
}

impl Received {
    /// The topic the event is about, if any.
    pub fn topic(&self) -> Option<&str> {
        self.wire["topic"].as_str()
    }
}

/// A subscription's options.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SubscribeOptions {
    /// At most this many events per topic per second.
    pub max_rate: Option<f64>,
    /// Levels per side of book topics (10, 25, 100, 500 or 1000).
    pub depth: Option<usize>,
}

/// A blocking subscriber. See the module documentation.
pub struct Subscriber {
    cfg: SubscriberConfig,
    ws: Ws,
    held: state::Held,
    /// What is subscribed, to subscribe again after a reconnect.
    subs: BTreeMap<String, SubscribeOptions>,
    next_id: u64,
    /// Events read while waiting for an acknowledgement.
    queued: VecDeque<Received>,
    /// Bytes of messages received, over every connection.
    bytes_received: u64,
}

impl Subscriber {
    /// Connects (once: a wrong URL, token or certificate fails here).
    pub fn connect(cfg: SubscriberConfig) -> Result<Subscriber> {
        let ws = open(&cfg)?;
        Ok(Subscriber {
            cfg,
            ws,
            held: state::Held::default(),
            subs: BTreeMap::new(),
            next_id: 1,
            queued: VecDeque::new(),
            bytes_received: 0,
        })
    }

    /// Bytes of messages received so far (payloads, over every connection).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Subscribes to `topics` (topics and patterns) and waits for the
    /// acknowledgement; a refusal is `Error::Command` with the server's
    /// code and message. The snapshots follow, through [`Subscriber::next`].
    pub fn subscribe(&mut self, topics: &[&str], options: Option<SubscribeOptions>) -> Result<()> {
        let options = options.unwrap_or_default();
        let mut cmd = json!({"op": "subscribe", "topics": topics});
        if let Some(r) = options.max_rate {
            cmd["max_rate"] = json!(r);
        }
        if let Some(d) = options.depth {
            cmd["depth"] = json!(d);
        }
        self.command(cmd)?;
        for t in topics {
            self.subs.insert(t.to_string(), options);
        }
        Ok(())
    }

    /// Unsubscribes and waits for the acknowledgement; the values of topics
    /// no longer covered are dropped.
    pub fn unsubscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.command(json!({"op": "unsubscribe", "topics": topics}))?;
        for t in topics {
            self.subs.remove(*t);
        }
        let subs = &self.subs;
        let covered = |topic: &str| subs.keys().any(|p| covers(p, topic));
        self.held.values.retain(|t, _| covered(t));
        self.held.books.retain(|t, _| covered(t));
        Ok(())
    }

    /// The next event, applied to the values and books, waiting at most
    /// `timeout`; None when nothing came. A dropped connection or a gap is
    /// handled here (reconnect and resume) when `reconnect` is on.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Received>> {
        if let Some(r) = self.queued.pop_front() {
            return Ok(Some(r));
        }
        let Some(wire) = self.read(timeout)? else {
            return Ok(None);
        };
        Ok(Some(self.apply(wire)?))
    }

    /// A topic's merged value.
    pub fn value(&self, topic: &str) -> Option<&TopicValue> {
        self.held.values.get(topic)
    }

    /// A book topic's levels.
    pub fn book(&self, topic: &str) -> Option<&BookValue> {
        self.held.books.get(topic)
    }

    /// Every topic with a value.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.held.values.keys().map(String::as_str)
    }

    /// Applies one event; on a gap, reconnects and resumes.
    fn apply(&mut self, wire: Json) -> Result<Received> {
        let event = match wire["event"].as_str().unwrap_or_default() {
            "subscribed" => Event::Subscribed,
            "unsubscribed" => Event::Unsubscribed,
            "error" => Event::Error {
                code: wire["code"].as_str().unwrap_or_default().to_string(),
                message: wire["message"].as_str().unwrap_or_default().to_string(),
            },
            _ => self.held.apply(&wire),
        };
        if matches!(event, Event::Gap { .. }) && self.cfg.reconnect {
            // The copy is not exact any more: the server resends from where
            // it is right (history) or whole (snapshot, book).
            let received = Received { event, wire };
            let reconnected = self.reconnect()?;
            self.queued.push_back(reconnected);
            return Ok(received);
        }
        Ok(Received { event, wire })
    }

    /// Sends a command and waits for its reply, keeping the events that
    /// come first.
    fn command(&mut self, cmd: Json) -> Result<()> {
        self.request(cmd, false).map(drop)
    }

    /// Sends `cmd` with the next id and returns its reply; a refusal is
    /// `Error::Command`. The events that come first are applied and kept
    /// for `next`, in order. While `reconnecting`, a drop is an error (the
    /// reconnect in progress fails and is tried again) and events only
    /// update the values: a gap then cannot start a reconnect of its own.
    fn request(&mut self, mut cmd: Json, reconnecting: bool) -> Result<Json> {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        self.send(&cmd)?;
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wire = match reconnecting {
                true => self.read_frame(left).map_err(ReadFailure::into_error)?,
                false => self.read(left)?,
            };
            let Some(wire) = wire else {
                return Err(Error::Timeout);
            };
            if wire["id"].as_u64() == Some(id) {
                if wire["event"] == "error" {
                    return Err(refused(&wire));
                }
                return Ok(wire);
            }
            let received = match reconnecting {
                true => Received {
                    event: self.held.apply(&wire),
                    wire,
                },
                false => self.apply(wire)?,
            };
            self.queued.push_back(received);
        }
    }

    fn send(&mut self, cmd: &Json) -> Result<()> {
        let msg = match self.cfg.format {
            Format::Json => Message::text(cmd.to_string()),
            Format::MsgPack => {
                Message::binary(rmp_serde::to_vec_named(cmd).expect("a JSON value packs"))
            }
        };
        self.ws.send(msg).map_err(ws_error)
    }

    /// One event from the socket, or None after `timeout`. A dropped
    /// connection reconnects (when on) and queues `Reconnected`.
    fn read(&mut self, timeout: Duration) -> Result<Option<Json>> {
        match self.read_frame(timeout) {
            Ok(wire) => Ok(wire),
            Err(ReadFailure::Connection(e)) if self.cfg.reconnect => {
                log::warn!("subscriber connection lost ({e}); reconnecting");
                let reconnected = self.reconnect()?;
                self.queued.push_back(reconnected);
                Ok(None)
            }
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// One event from the socket, decoded, or None after `timeout`.
    fn read_frame(&mut self, timeout: Duration) -> std::result::Result<Option<Json>, ReadFailure> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let tcp = self.ws.get_ref().tcp();
            tcp.set_read_timeout(Some(left))
                .map_err(|e| ReadFailure::Event(e.into()))?;
            let decoded = match self.ws.read() {
                Ok(Message::Text(t)) => {
                    self.bytes_received += t.len() as u64;
                    serde_json::from_str(&t).map_err(bad_event)
                }
                Ok(Message::Binary(b)) => {
                    self.bytes_received += b.len() as u64;
                    rmp_serde::from_slice(&b).map_err(bad_event)
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(ReadFailure::Connection(e)),
            };
            return decoded.map(Some).map_err(ReadFailure::Event);
        }
    }

    /// Connects again (backing off) and subscribes everything again, with
    /// `since` for every topic whose numbering it knows (books are always
    /// sent whole). The new acknowledgements' `recovered` lists are joined.
    fn reconnect(&mut self) -> Result<Received> {
        let mut backoff = Duration::from_millis(50);
        let started = Instant::now();
        self.ws = loop {
            match open(&self.cfg) {
                Ok(ws) => break ws,
                Err(e) if started.elapsed() < Duration::from_secs(60) => {
                    log::warn!("subscriber reconnect failed ({e}); again in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        };
        let mut recovered = Vec::new();
        let subs: Vec<(String, SubscribeOptions)> = self.subs.clone().into_iter().collect();
        for (pattern, options) in subs {
            let since: serde_json::Map<String, Json> = self
                .held
                .values
                .iter()
                .filter(|(t, v)| {
                    covers(&pattern, t) && v.epoch.is_some() && !self.held.books.contains_key(*t)
                })
                .map(|(t, v)| (t.clone(), json!({"seq": v.seq, "epoch": v.epoch})))
                .collect();
            let mut cmd = json!({"op": "subscribe", "topics": [pattern], "since": since});
            if let Some(r) = options.max_rate {
                cmd["max_rate"] = json!(r);
            }
            if let Some(d) = options.depth {
                cmd["depth"] = json!(d);
            }
            recovered.extend(self.resubscribe(cmd)?);
        }
        let wire = json!({"event": "reconnected", "recovered": recovered});
        Ok(Received {
            event: Event::Reconnected { recovered },
            wire,
        })
    }

    /// Sends one resubscribe and returns its acknowledgement's `recovered`.
    fn resubscribe(&mut self, cmd: Json) -> Result<Vec<String>> {
        let ack = self.request(cmd, true)?;
        let list = ack["recovered"].as_array().cloned().unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect())
    }
}

/// Why reading an event failed: the connection (reconnect) or the event
/// itself (an error for the caller).
enum ReadFailure {
    Connection(tungstenite::Error),
    Event(Error),
}

impl ReadFailure {
    fn into_error(self) -> Error {
        match self {
            ReadFailure::Connection(e) => ws_error(e),
            ReadFailure::Event(e) => e,
        }
    }
}

/// Does subscription `pattern` (a topic, `PREFIX*` or `*`) cover `topic`?
fn covers(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

fn open(cfg: &SubscriberConfig) -> Result<Ws> {
    let mut remote = RemoteConfig::new(cfg.url.clone(), cfg.token.clone());
    remote.connect_timeout = cfg.timeout;
    remote.tls_ca_file = cfg.tls_ca_file.clone();
    stream::connect_as(&remote, cfg.format.subprotocol())
}

fn refused(wire: &Json) -> Error {
    Error::Command {
        code: wire["code"].as_str().unwrap_or_default().to_string(),
        message: wire["message"].as_str().unwrap_or_default().to_string(),
    }
}

fn ws_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Io(e) => Error::Io(e),
        other => Error::Io(std::io::Error::other(other.to_string())),
    }
}

fn bad_event(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the server sent an event that does not parse: {e}"),
    ))
}
