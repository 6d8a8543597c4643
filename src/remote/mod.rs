//! Publishing into a tickcast server in another process, over `/publish`.
//!
//! A [`RemotePublisher`] queues updates in memory and a background thread
//! sends them in batches (one MessagePack frame per batch), reads the server's
//! acknowledgements, and reconnects with exponential backoff when the
//! connection drops. Nothing blocks forever: `publish` waits at most
//! `RemoteConfig::publish_timeout` for room in the queue, `flush` takes a
//! timeout, and connecting has its own.
//!
//! Loss is reported, never hidden: updates sent on a connection that dropped
//! before the server acknowledged them may not have been published, and are
//! counted in [`RemotePublisher::lost`] and passed to the `on_loss` callback.

mod config;
mod stream;
pub mod subscriber;

pub use config::{LossCallback, RemoteConfig};
pub use stream::Stream;
pub use subscriber::{Subscriber, SubscriberConfig};

/// Opens a WebSocket to `url` (`ws://…/ws` or `wss://…/ws`, trusting
/// `cfg.tls_ca_file` or the system bundle), with `cfg.token` as a bearer
/// token unless it is empty: a subscriber connection for tools such as the
/// `tickcast` command. Reads and writes time out after `cfg.connect_timeout`
/// (change it on the socket with `get_ref().tcp()`).
pub fn connect_websocket(cfg: &RemoteConfig) -> Result<tungstenite::WebSocket<Stream>> {
    stream::connect(cfg)
}

use crate::access::Scope;
use crate::error::{Error, Result};
use crate::model::update::{now_ns, Update};
use crate::wire::publish::{self, Item, PublisherEvent};
use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use parking_lot::{Mutex, RwLock};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stream::{open, ServerRules, Ws};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    /// Updates accepted by `publish` and friends into the queue.
    queued: AtomicU64,
    /// Updates taken from the queue and written to a connection.
    sent: AtomicU64,
    /// Of those, acknowledged by the server.
    acked: AtomicU64,
    /// Sent but never acknowledged before their connection dropped.
    lost: AtomicU64,
    reconnects: AtomicU64,
    stop: AtomicBool,
    /// The last connection error, for `flush` to report.
    last_error: Mutex<Option<String>>,
    /// The server's topic length limit, as its last `101` response said:
    /// updates are checked against it at the call, exactly as the server
    /// checks them, so the server never refuses what was accepted here.
    max_topic_len: AtomicUsize,
    /// The token's publish scope, as the last `101` response said (None:
    /// every topic): checked at the call too.
    scope: RwLock<Option<Scope>>,
    /// The server's extra fields, as the last `101` response named them.
    fields: RwLock<Box<[Box<str>]>>,
}

impl Counters {
    fn learn(&self, rules: ServerRules) {
        if let Some(n) = rules.max_topic_len {
            self.max_topic_len.store(n, Ordering::SeqCst);
        }
        *self.scope.write() = rules.scope;
        *self.fields.write() = rules.fields;
    }
}

/// A handle that publishes into a remote tickcast server. Cloneable and `Send`:
/// every clone feeds the same queue and connection. The connection closes when
/// the last clone is dropped or [`RemotePublisher::close`] is called.
#[derive(Clone)]
pub struct RemotePublisher {
    tx: Sender<Item>,
    counters: Arc<Counters>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    publish_timeout: Duration,
}

impl RemotePublisher {
    /// Connects (once, synchronously, so a wrong URL or token fails here) and
    /// starts the background sender.
    pub fn connect(cfg: RemoteConfig) -> Result<RemotePublisher> {
        let (ws, rules) = open(&cfg)?;
        let (tx, rx) = bounded(cfg.queue_capacity);
        let counters = Arc::new(Counters::default());
        counters.learn(rules);
        counters.connected.store(true, Ordering::SeqCst);
        let publish_timeout = cfg.publish_timeout;
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("tickcast-remote".into())
            .spawn(move || run(cfg, ws, rx, c))?;
        Ok(RemotePublisher {
            tx,
            counters,
            thread: Arc::new(Mutex::new(Some(thread))),
            publish_timeout,
        })
    }

    /// One of the server's extra fields (`[fields] extra`, as its `101`
    /// response names them), to set with `Update::field`.
    pub fn field(&self, name: &str) -> Option<crate::model::update::Field> {
        crate::model::update::Field::named(name, &self.counters.fields.read())
    }

    /// Checks an entry with the server's own rules and limit
    /// ([`publish::check_item`]), and against the token's publish scope.
    fn check(&self, item: Item) -> Result<Item> {
        publish::check_item(&item, self.counters.max_topic_len.load(Ordering::Relaxed))?;
        if let Some(scope) = &*self.counters.scope.read() {
            let topic = item.topic();
            if !scope.allows_topic(topic) {
                return Err(Error::Forbidden {
                    topic: topic.to_string(),
                });
            }
        }
        Ok(item)
    }

    fn prepare(&self, mut u: Update) -> Result<Item> {
        if u.timestamp_ns == 0 {
            u.timestamp_ns = now_ns();
        }
        self.check(Item::Update(u))
    }

    /// Queues an update, waiting at most the configured `publish_timeout` for
    /// room (`Error::Full` after that). Invalid topics or values fail at once.
    pub fn publish(&self, update: Update) -> Result<()> {
        self.enqueue(self.prepare(update)?)
    }

    /// Queues a clear of `topic` (in order with the updates): its subscribers
    /// get `cleared`, and its next update starts a new epoch at `seq` 1.
    pub fn clear(&self, topic: &str) -> Result<()> {
        self.enqueue(self.check(Item::Clear(topic.to_string()))?)
    }

    /// Puts a checked item in the send queue, waiting at most
    /// `publish_timeout`, and counts it for `flush`.
    fn enqueue(&self, u: Item) -> Result<()> {
        self.tx
            .send_timeout(u, self.publish_timeout)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(_) => Error::Full,
                SendTimeoutError::Disconnected(_) => Error::Closed,
            })?;
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Queues an update or fails at once with `Error::Full`.
    pub fn try_publish(&self, update: Update) -> Result<()> {
        let u = self.prepare(update)?;
        self.tx.try_send(u).map_err(|e| match e {
            TrySendError::Full(_) => Error::Full,
            TrySendError::Disconnected(_) => Error::Closed,
        })?;
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Queues several updates in order; checks them all first.
    pub fn publish_batch(&self, updates: impl IntoIterator<Item = Update>) -> Result<()> {
        let ready = updates
            .into_iter()
            .map(|u| self.prepare(u))
            .collect::<Result<Vec<_>>>()?;
        ready.into_iter().try_for_each(|u| self.enqueue(u))
    }

    /// Waits until every update queued so far has been acknowledged by the
    /// server, or fails with `Error::Timeout`. Updates counted as lost never
    /// will be; they do not make `flush` wait.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = &self.counters;
            let settled = c.acked.load(Ordering::SeqCst) + c.lost.load(Ordering::SeqCst);
            if settled >= c.queued.load(Ordering::SeqCst) && self.is_connected() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Updates that may have been lost because a connection dropped before the
    /// server acknowledged them.
    pub fn lost(&self) -> u64 {
        self.counters.lost.load(Ordering::SeqCst)
    }

    /// Updates written to a connection (across reconnects); each is later
    /// either acknowledged or counted as lost.
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::SeqCst)
    }

    /// Updates acknowledged by the server (across reconnects).
    pub fn acknowledged(&self) -> u64 {
        self.counters.acked.load(Ordering::SeqCst)
    }

    /// Times the connection was re-established.
    pub fn reconnects(&self) -> u64 {
        self.counters.reconnects.load(Ordering::SeqCst)
    }

    /// Is the connection up right now?
    pub fn is_connected(&self) -> bool {
        self.counters.connected.load(Ordering::SeqCst)
    }

    /// The last connection error seen by the background thread, if any.
    pub fn last_error(&self) -> Option<String> {
        self.counters.last_error.lock().clone()
    }

    /// Stops the background thread after it has sent what is queued (bounded by
    /// one `flush` of `publish_timeout`), and closes the connection.
    pub fn close(&self) {
        let _ = self.flush(self.publish_timeout);
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for RemotePublisher {
    fn drop(&mut self) {
        // The last clone (ours and the thread's Arc): stop the thread.
        if Arc::strong_count(&self.thread) == 1 {
            self.counters.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.lock().take() {
                let _ = t.join();
            }
        }
    }
}

/// The background thread: send batches, read acks, reconnect on failure.
fn run(cfg: RemoteConfig, first: Ws, rx: Receiver<Item>, c: Arc<Counters>) {
    let mut ws = Some(first);
    let mut backoff = cfg.min_backoff;
    let mut batch: Vec<Item> = Vec::with_capacity(cfg.batch_max);
    while !c.stop.load(Ordering::SeqCst) {
        let Some(sock) = ws.as_mut() else {
            std::thread::sleep(backoff);
            match open(&cfg) {
                Ok((s, rules)) => {
                    c.learn(rules);
                    ws = Some(s);
                    backoff = cfg.min_backoff;
                    c.reconnects.fetch_add(1, Ordering::SeqCst);
                    c.connected.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    *c.last_error.lock() = Some(e.to_string());
                    backoff = (backoff * 2).min(cfg.max_backoff);
                }
            }
            continue;
        };
        let result = pump(sock, &rx, &c, &cfg, &mut batch);
        if let Err(e) = result {
            *c.last_error.lock() = Some(e.to_string());
            c.connected.store(false, Ordering::SeqCst);
            let unacked = c.sent.load(Ordering::SeqCst)
                - c.acked.load(Ordering::SeqCst)
                - c.lost.load(Ordering::SeqCst);
            if unacked > 0 {
                c.lost.fetch_add(unacked, Ordering::SeqCst);
                if let Some(f) = &cfg.on_loss {
                    f(unacked);
                }
            }
            ws = None;
        }
    }
    if let Some(mut s) = ws {
        let _ = s.close(None);
        let _ = s.flush();
    }
}

/// Why a connection was given up (kept as the publisher's `last_error`).
#[derive(Debug)]
enum Dropped {
    Send(tungstenite::Error),
    Read(tungstenite::Error),
    ClosedByServer(Option<CloseFrame>),
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::Send(e) => write!(f, "send failed: {e}"),
            Dropped::Read(e) => write!(f, "read failed: {e}"),
            Dropped::ClosedByServer(frame) => {
                write!(f, "server closed the connection: {frame:?}")
            }
        }
    }
}

/// What one connection has sent and had acknowledged.
#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
}

/// Runs one connection until it fails or the publisher stops.
fn pump(
    ws: &mut Ws,
    rx: &Receiver<Item>,
    c: &Counters,
    cfg: &RemoteConfig,
    batch: &mut Vec<Item>,
) -> std::result::Result<(), Dropped> {
    let mut tally = Tally::default();
    while !c.stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(u) => {
                batch.push(u);
                while batch.len() < cfg.batch_max {
                    match rx.try_recv() {
                        Ok(u) => batch.push(u),
                        Err(_) => break,
                    }
                }
                let frame = publish::encode_items(batch, &c.fields.read());
                let n = batch.len() as u64;
                batch.clear();
                ws.send(Message::binary(frame)).map_err(Dropped::Send)?;
                tally.sent += n;
                c.sent.fetch_add(n, Ordering::SeqCst);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        // Read every ack that has arrived.
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => {
                    if let Ok(event) = rmp_serde::from_slice::<PublisherEvent>(&b) {
                        on_event(event, &mut tally, c, cfg);
                    }
                }
                Ok(Message::Close(f)) => return Err(Dropped::ClosedByServer(f)),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(Dropped::Read(e)),
            }
        }
    }
    Ok(())
}

/// What the server told the publisher: an ack, a refusal, interest.
fn on_event(event: PublisherEvent, tally: &mut Tally, c: &Counters, cfg: &RemoteConfig) {
    match event {
        PublisherEvent::Ack { count } => {
            let count = count.min(tally.sent);
            if count > tally.acked {
                c.acked.fetch_add(count - tally.acked, Ordering::SeqCst);
                tally.acked = count;
            }
        }
        PublisherEvent::Error {
            code,
            message,
            refused,
            ..
        } => {
            // Refused updates will never be acknowledged: count them as
            // lost now so `flush` does not wait for them.
            log::warn!("server refused a publish frame: {code}: {message}");
            tally.sent = tally.sent.saturating_sub(refused);
            c.lost.fetch_add(refused, Ordering::SeqCst);
            if let Some(f) = &cfg.on_loss {
                f(refused);
            }
        }
        PublisherEvent::Interest {
            selector,
            pattern,
            active,
        } => {
            if let Some(f) = &cfg.on_interest {
                f(&crate::interest::Interest {
                    selector,
                    pattern,
                    active,
                });
            }
        }
    }
}
