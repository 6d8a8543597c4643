//! Starting, observing and stopping an embedded server: the one place that
//! wires the threads together (the router from `engine`, the shards from
//! `net`) and the channels between them.

use crate::config::Config;
use crate::engine::ingest::Publisher;
use crate::engine::router::{Router, RouterConfig};
use crate::engine::table::{Snapshot, TopicTable};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::net::mailbox::{Listener, ShardLink, ShardMsg};
use crate::net::shard::Shard;
use crate::net::Shared;
use crossbeam_channel::{bounded, Sender};
use mio::net::TcpListener;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Room in each shard's channel, in router batches. When a shard falls this far
/// behind, the router waits for it and back-pressure reaches the publishers.
const SHARD_CHANNEL_BATCHES: usize = 1024;

mod wiring;
use wiring::{ingest_channels, start_cluster, start_interest, Bound, Mailboxes};

/// A running tickcast server: a router thread and N shard threads serving one
/// listening port. Dropping it shuts it down like [`Server::shutdown`].
///
/// ```no_run
/// use tickcast::{Config, Server, Update};
/// let server = Server::start(Config::default().listen("127.0.0.1:0".parse().unwrap())).unwrap();
/// println!("subscribe at ws://{}/ws", server.local_addr());
/// server.publisher().publish(Update::new("BTC-USD").bid(64000.0).ask(64000.5)).unwrap();
/// server.shutdown();
/// ```
pub struct Server {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    publisher: Publisher,
    table: Arc<TopicTable>,
    shared: Arc<Shared>,
    shards: Vec<(ShardLink, Option<JoinHandle<()>>)>,
    /// One per `routers`.
    routers: Vec<JoinHandle<()>>,
    router_stop: Option<Sender<()>>,
    /// Cluster mode: the link to Redis.
    cluster: Option<crate::cluster::Cluster>,
    /// Calls the interest callbacks.
    interest: crate::interest::Dispatcher,
}

impl Server {
    /// Binds the listener and starts the router and shard threads.
    ///
    /// A step that fails undoes the ones before it: the server under
    /// construction is a `Server` from the moment it owns a thread, so its
    /// `Drop` stops and joins whatever was started, and the listeners close
    /// with the shard that would have owned them.
    pub fn start(config: Config) -> Result<Server> {
        config.validate()?;
        // The JWT key and TLS files are read first: a bad one binds nothing.
        let live = Arc::new(crate::reload::build(config.clone(), 0)?);
        let bound = Bound::bind(&config, live.tls.is_some())?;
        if let Some(level) = config.log_level {
            log::set_max_level(level);
        }
        let table = Arc::new(TopicTable::with_max_topics(config.max_topics));
        table.set_trades_snapshot(config.trades_snapshot);
        table.set_field_names(&config.extra_fields);
        let (inbox, ingest_rxs) = ingest_channels(&config);
        let metrics = Arc::new(Metrics::new(config.shards));
        let mailboxes = Mailboxes::new(config.shards)?;
        let (interest_tx, interest_rx) = crossbeam_channel::unbounded();
        let interest = start_interest(interest_rx, &mailboxes.links)?;
        let (published_tx, loads_tx, cluster) = start_cluster(&config, &table, &inbox, &metrics)?;
        let shared = Arc::new(Shared {
            shutting_down: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            deflate_contexts: Default::default(),
            floods: Default::default(),
            metrics: metrics.clone(),
            live: parking_lot::Mutex::new(live),
            source: parking_lot::Mutex::new(None),
            shards: mailboxes.links.clone(),
            cluster: cluster.as_ref().map(|c| c.link.clone()),
            interest: Arc::new(crate::engine::interest::InterestBook::new(interest_tx)),
            wanted: interest.active.clone(),
            reload: crate::reload::from_source,
        });
        let mut publisher = Publisher::new(published_tx, config.max_topic_len, table.clone());
        if let Some(c) = &cluster {
            publisher = publisher.with_sink_state(c.link.writer_up.clone());
        }
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let mut server = Server {
            local_addr: bound.local_addr,
            tls_addr: bound.tls_addr,
            publisher,
            table,
            shared,
            shards: Vec::new(),
            routers: Vec::new(),
            router_stop: Some(stop_tx),
            cluster,
            interest,
        };
        let links = mailboxes.links.clone();
        server.spawn_shards(mailboxes, bound.listeners)?;
        if crate::faults::fails(crate::faults::Fault::Start) {
            return Err(Error::Io(std::io::Error::other("injected fault: start")));
        }
        let outlets: Vec<Arc<dyn crate::engine::link::Outlet>> = links
            .iter()
            .map(|l| Arc::new(l.clone()) as Arc<dyn crate::engine::link::Outlet>)
            .collect();
        for (i, ingest) in ingest_rxs.into_iter().enumerate() {
            let router = Router {
                table: server.table.clone(),
                ingest,
                stop: stop_rx.clone(),
                shards: outlets.clone(),
                config: RouterConfig::from(&config),
                metrics: metrics.clone(),
                loads: loads_tx.clone(),
                encoder: Box::new(crate::wire::event::Encoder::default()),
            };
            server.spawn_router(i, router)?;
        }
        Ok(server)
    }

    /// Starts router `i`; it is in `self.routers` at once, so a later
    /// failure stops it.
    fn spawn_router(&mut self, i: usize, router: Router) -> Result<()> {
        let name = match i {
            0 => "tickcast-router".to_string(),
            i => format!("tickcast-router-{i}"),
        };
        let body = guarded(name.clone(), self.shared.clone(), move || router.run());
        let thread = std::thread::Builder::new().name(name).spawn(body)?;
        self.routers.push(thread);
        Ok(())
    }

    /// Starts a thread per shard; shard 0 gets the listeners. Each started
    /// shard is in `self.shards` at once, so a later failure stops it.
    fn spawn_shards(
        &mut self,
        mailboxes: Mailboxes,
        listeners: Vec<(TcpListener, Listener)>,
    ) -> Result<()> {
        let Mailboxes {
            polls,
            links,
            receivers,
        } = mailboxes;
        let mut listeners = Some(listeners);
        for (id, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            // Shard 0 accepts and deals connections round-robin to all shards:
            // even spread, and no SO_REUSEPORT, which would let a second daemon
            // silently share the port.
            let mine = if id == 0 { listeners.take() } else { None };
            let shard = Shard::new(
                id,
                poll,
                mine.unwrap_or_default(),
                links.clone(),
                rx,
                self.table.clone(),
                self.shared.clone(),
                self.publisher.clone(),
            )?;
            let guard = guarded(format!("shard {id}"), self.shared.clone(), move || {
                shard.run()
            });
            let thread = std::thread::Builder::new()
                .name(format!("tickcast-shard-{id}"))
                .spawn(guard)?;
            self.shards.push((links[id].clone(), Some(thread)));
        }
        Ok(())
    }

    /// Checks a configuration as `start` would, without binding or starting
    /// anything: every range and rule, and that the TLS certificate chain and
    /// key can be read and fit together (`tickcastd --check-config`).
    pub fn check_config(config: &Config) -> Result<()> {
        config.validate()?;
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            crate::net::transport::load_server_config(cert, key)?;
            Self::certificate_names(config)?;
        }
        Ok(())
    }

    /// What clients will make of the configured certificate: the names
    /// (subjectAltName DNS names and addresses) they may connect with, or
    /// `Error::Tls(TlsError::Unusable)` saying why every client refuses it
    /// and how to make one that works. Empty without TLS.
    pub fn certificate_names(config: &Config) -> Result<Vec<String>> {
        let Some(path) = &config.tls_cert else {
            return Ok(Vec::new());
        };
        let chain = crate::net::transport::read_chain(path)?;
        crate::net::cert_check::client_view(&chain).map_err(|why| {
            Error::Tls(crate::error::TlsError::Unusable {
                path: path.clone(),
                why,
            })
        })
    }

    /// The address the server listens on (with the real port when 0 was asked):
    /// the plain `ws://` listener's, or the TLS one's when plain is off.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `wss://` address, when TLS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// A new publisher handle; clone it freely across threads.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// One of the server's extra fields (`[fields] extra`), by name, to
    /// set with `Update::field`; None when there is no such field.
    ///
    /// ```
    /// use tickcast::{Config, Server, Update};
    /// let config = Config::default()
    ///     .listen("127.0.0.1:0".parse().unwrap())
    ///     .extra_fields(["open_interest", "iv"]);
    /// let server = Server::start(config).unwrap();
    /// let iv = server.field("iv").unwrap();
    /// server.publisher().publish(Update::new("OPT.X").field(iv, 0.31)).unwrap();
    /// assert!(server.field("delta").is_none());
    /// ```
    pub fn field(&self, name: &str) -> Option<crate::model::update::Field> {
        self.publisher.field(name)
    }

    /// The latest merged value of a topic, if it has been published.
    pub fn snapshot(&self, topic: &str) -> Option<Snapshot> {
        self.table.snapshot(topic)
    }

    /// Number of topics that hold a value (published and not cleared since):
    /// what `max_topics` bounds.
    pub fn topic_count(&self) -> usize {
        self.table.live()
    }

    /// The Prometheus text `/metrics` serves.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render(
            self.table.live(),
            self.shared.shutting_down.load(Ordering::Relaxed),
        )
    }

    /// Applies a new configuration without a restart: tokens, JWT keys,
    /// origins, limits, heartbeat, the TLS certificate (its files are read
    /// again) and the log level. New connections get it whole; open ones
    /// keep going, except those whose static token is no longer configured
    /// (and open-access subscribers once a token is required), which are
    /// closed with 1008. Keys in [`crate::reload::RESTART_ONLY`] keep their
    /// running values and are listed in the answer. A configuration that
    /// fails anywhere (a range, an unreadable key) changes nothing.
    pub fn reload(&self, config: Config) -> Result<crate::reload::Reloaded> {
        crate::reload::apply(&self.shared.live, &self.shared.shards, config)
    }

    /// Where [`Server::reload_from_source`] and `POST /admin/reload` read the
    /// configuration: the daemon reads its file again and lays its flags
    /// over it. Without a source, `POST /admin/reload` answers 404.
    pub fn set_config_source(&self, source: impl Fn() -> Result<Config> + Send + Sync + 'static) {
        *self.shared.source.lock() = Some(Arc::new(source));
    }

    /// Reads the configuration from the source and applies it as
    /// [`Server::reload`] does (the daemon's SIGHUP).
    pub fn reload_from_source(&self) -> Result<crate::reload::Reloaded> {
        crate::reload::from_source(&self.shared)
    }

    /// The configuration in force: the last one loaded, with restart-only
    /// keys as at start.
    pub fn config(&self) -> Config {
        self.shared.live.lock().config.clone()
    }

    /// Calls `callback` each time a topic or a pattern gains its first
    /// subscriber anywhere on the server (`active`) or loses its last
    /// (unsubscribe, close, or a connection that just drops), first once
    /// for each that is wanted already. A feed handler that pays per
    /// upstream symbol subscribes upstream on the first and drops it on the
    /// last. Exact topics and patterns are counted apart: `FX.*` and
    /// `FX.EURUSD` are two selectors.
    ///
    /// Called on the `tickcast-interest` thread, one event at a time, in
    /// the order the counts changed, never while tickcast holds a lock: the
    /// callback may publish or block (later events wait for it, nothing
    /// else does).
    pub fn on_interest(
        &self,
        callback: impl Fn(&crate::interest::Interest) + Send + Sync + 'static,
    ) {
        if let Some(r) = &self.interest.register {
            let _ = r.send(Box::new(callback));
        }
    }

    /// A shard or the router died of a bug (a panic outside any one
    /// connection's handling; the log says which). The server keeps what
    /// it can running, but `/healthz` says 503: a process embedding it
    /// should restart it, as `tickcastd` does by exiting with status 70.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// The same question as [`Server::failed`], askable from another
    /// thread (a supervisor's watch) without holding the server.
    pub fn failure_watch(&self) -> impl Fn() -> bool + Send + 'static {
        let shared = self.shared.clone();
        move || shared.failed.load(Ordering::SeqCst)
    }

    /// The memory clients account for (connections, what they hold, their
    /// subscriptions: the client parts of `tickcast_memory_estimated_bytes`),
    /// askable from another thread: `tickcastd` hands memory back to the
    /// system when it falls.
    pub fn client_memory_watch(&self) -> impl Fn() -> u64 + Send + 'static {
        let shared = self.shared.clone();
        move || shared.metrics.clients_estimate()
    }

    /// Open client connections (including ones still in the handshake).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting, delivers updates already accepted, closes every
    /// WebSocket with 1001 ("going away"), and joins every thread. Publishing
    /// afterwards fails with `Closed`.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.router_stop.is_none() {
            return;
        }
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // What publishers queued goes to Redis first, while the router
        // still takes what the link feeds it.
        if let Some(c) = self.cluster.as_mut() {
            c.stop();
        }
        drop(self.router_stop.take());
        for r in self.routers.drain(..) {
            if r.join().is_err() {
                log::error!("a router thread panicked");
            }
        }
        for (link, _) in &self.shards {
            link.send(ShardMsg::Shutdown);
        }
        for (i, (_, thread)) in self.shards.iter_mut().enumerate() {
            if let Some(t) = thread.take() {
                if t.join().is_err() {
                    log::error!("shard {i} thread panicked");
                }
            }
        }
        // After the shards: the last subscribers' leaving is told too.
        self.interest.stop();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A thread body that, if it panics, marks the server failed (see
/// `Shared::failed`) and says so in the log, instead of ending silently.
fn guarded(
    name: String,
    shared: Arc<Shared>,
    body: impl FnOnce() + Send + 'static,
) -> impl FnOnce() + Send + 'static {
    move || {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
            shared.failed.store(true, Ordering::SeqCst);
            log::error!("the {name} thread died of a bug; the server is failed (/healthz: 503)");
        }
    }
}
