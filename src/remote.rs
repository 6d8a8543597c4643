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

use crate::error::{Error, Result};
use crate::update::{now_ns, Update};
use crate::wire::publish::{self, PublisherEvent};
use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use parking_lot::Mutex;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// A callback told how many updates a dropped connection may have lost.
pub type LossCallback = Box<dyn Fn(u64) + Send + Sync>;

/// Settings of a [`RemotePublisher`].
#[non_exhaustive]
pub struct RemoteConfig {
    /// `ws://host:port/publish`.
    pub url: String,
    /// A publisher token of the server (`publisher_tokens`).
    pub token: String,
    /// Updates queued in memory while sending or reconnecting. Default 65,536.
    pub queue_capacity: usize,
    /// Longest `publish` waits for room in the queue before `Error::Full`. Default 5 s.
    pub publish_timeout: Duration,
    /// Limit for each TCP connect and WebSocket handshake. Default 5 s.
    pub connect_timeout: Duration,
    /// First reconnect delay; doubles per failure up to `max_backoff`. Default 50 ms.
    pub min_backoff: Duration,
    /// Longest reconnect delay. Default 5 s.
    pub max_backoff: Duration,
    /// Most updates per frame. Default 512.
    pub batch_max: usize,
    /// For `wss://`: PEM file of the certificate authorities to trust. Default:
    /// the system bundle (`/etc/ssl/certs/ca-certificates.crt` or
    /// `/etc/pki/tls/certs/ca-bundle.crt`).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Called (on the background thread) with the number of updates a dropped
    /// connection may have lost.
    pub on_loss: Option<LossCallback>,
}

impl RemoteConfig {
    /// Defaults for `url` and `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            token: token.into(),
            queue_capacity: 65_536,
            publish_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            batch_max: 512,
            tls_ca_file: None,
            on_loss: None,
        }
    }

    /// Sets the loss callback.
    pub fn on_loss(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.on_loss = Some(Box::new(f));
        self
    }

    /// Trusts the certificate authorities in this PEM file for `wss://`.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Sets the queue capacity.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Sets the reconnect backoff range.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}

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
}

/// A handle that publishes into a remote tickcast server. Cloneable and `Send`:
/// every clone feeds the same queue and connection. The connection closes when
/// the last clone is dropped or [`RemotePublisher::close`] is called.
#[derive(Clone)]
pub struct RemotePublisher {
    tx: Sender<Update>,
    counters: Arc<Counters>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    publish_timeout: Duration,
}

impl RemotePublisher {
    /// Connects (once, synchronously, so a wrong URL or token fails here) and
    /// starts the background sender.
    pub fn connect(cfg: RemoteConfig) -> Result<RemotePublisher> {
        let ws = open(&cfg)?;
        let (tx, rx) = bounded(cfg.queue_capacity);
        let counters = Arc::new(Counters::default());
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

    fn prepare(mut u: Update) -> Result<Update> {
        u.validate(1024)?;
        if u.timestamp_ns == 0 {
            u.timestamp_ns = now_ns();
        }
        Ok(u)
    }

    /// Queues an update, waiting at most the configured `publish_timeout` for
    /// room (`Error::Full` after that). Invalid topics or values fail at once.
    pub fn publish(&self, update: Update) -> Result<()> {
        self.enqueue(Self::prepare(update)?)
    }

    /// Puts a checked update in the send queue, waiting at most
    /// `publish_timeout`, and counts it for `flush`.
    fn enqueue(&self, u: Update) -> Result<()> {
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
        let u = Self::prepare(update)?;
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
            .map(Self::prepare)
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

/// The client's byte stream: plain TCP or TLS (rustls) over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

type Ws = WebSocket<Stream>;

fn tls_client_config(cfg: &RemoteConfig) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let candidates: Vec<std::path::PathBuf> = match &cfg.tls_ca_file {
        Some(p) => vec![p.clone()],
        None => vec![
            "/etc/ssl/certs/ca-certificates.crt".into(),
            "/etc/pki/tls/certs/ca-bundle.crt".into(),
        ],
    };
    let mut roots = rustls::RootCertStore::empty();
    for path in &candidates {
        if let Ok(iter) = CertificateDer::pem_file_iter(path) {
            for cert in iter.flatten() {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "no CA certificates found in {candidates:?}"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}
fn open(cfg: &RemoteConfig) -> Result<Ws> {
    let mut req = cfg
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidConfig(format!("bad URL {:?}: {e}", cfg.url)))?;
    let uri = req.uri().clone();
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(Error::InvalidConfig(format!(
                "URL {:?} must start with ws:// or wss://",
                cfg.url
            )))
        }
    };
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", cfg.token).parse().map_err(|_| {
            Error::InvalidConfig("token has characters not allowed in a header".into())
        })?,
    );
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| Error::InvalidConfig(format!("cannot resolve {host}")))?;
    let stream = TcpStream::connect_timeout(&addr, cfg.connect_timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(cfg.connect_timeout))?;
    stream.set_write_timeout(Some(cfg.connect_timeout))?;
    let stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| Error::InvalidConfig(format!("bad TLS server name {host:?}")))?;
        let conn = rustls::ClientConnection::new(tls_client_config(cfg)?, name)
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
    } else {
        Stream::Plain(stream)
    };
    let (ws, _) = tungstenite::client(req, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
            Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("server refused the publisher: HTTP {}", resp.status()),
            ))
        }
        other => Error::Io(io::Error::other(other.to_string())),
    })?;
    // Short read timeout: the sender thread polls for acks between batches.
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(1)))?;
    Ok(ws)
}

/// The background thread: send batches, read acks, reconnect on failure.
fn run(cfg: RemoteConfig, first: Ws, rx: Receiver<Update>, c: Arc<Counters>) {
    let mut ws = Some(first);
    let mut backoff = cfg.min_backoff;
    let mut batch: Vec<Update> = Vec::with_capacity(cfg.batch_max);
    while !c.stop.load(Ordering::SeqCst) {
        let Some(sock) = ws.as_mut() else {
            std::thread::sleep(backoff);
            match open(&cfg) {
                Ok(s) => {
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
            *c.last_error.lock() = Some(e);
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

/// Runs one connection until it fails or the publisher stops.
fn pump(
    ws: &mut Ws,
    rx: &Receiver<Update>,
    c: &Counters,
    cfg: &RemoteConfig,
    batch: &mut Vec<Update>,
) -> std::result::Result<(), String> {
    let mut conn_sent: u64 = 0;
    let mut conn_acked: u64 = 0;
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
                let frame = publish::encode(batch);
                let n = batch.len() as u64;
                batch.clear();
                ws.send(Message::binary(frame))
                    .map_err(|e| format!("send failed: {e}"))?;
                conn_sent += n;
                c.sent.fetch_add(n, Ordering::SeqCst);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        // Read every ack that has arrived.
        loop {
            match ws.read() {
                Ok(Message::Binary(b)) => match rmp_serde::from_slice::<PublisherEvent>(&b) {
                    Ok(PublisherEvent::Ack { count }) => {
                        let count = count.min(conn_sent);
                        if count > conn_acked {
                            c.acked.fetch_add(count - conn_acked, Ordering::SeqCst);
                            conn_acked = count;
                        }
                    }
                    Ok(PublisherEvent::Error {
                        code,
                        message,
                        refused,
                    }) => {
                        // Refused updates will never be acknowledged: count them
                        // as lost now so `flush` does not wait for them.
                        log::warn!("server refused a publish frame: {code}: {message}");
                        conn_sent = conn_sent.saturating_sub(refused);
                        c.lost.fetch_add(refused, Ordering::SeqCst);
                        if let Some(f) = &cfg.on_loss {
                            f(refused);
                        }
                    }
                    Err(_) => {}
                },
                Ok(Message::Close(f)) => {
                    return Err(format!("server closed the connection: {f:?}"))
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }
    Ok(())
}
