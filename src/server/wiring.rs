//! The pieces `Server::start` wires together before it starts a thread:
//! the listeners, each shard's poll and mailbox, the routers' channels, the
//! interest dispatcher and, in cluster mode, the link to Redis.

use super::SHARD_CHANNEL_BATCHES;
use crate::config::Config;
use crate::engine::inbox::Inbox;
use crate::engine::op::Ingested;
use crate::engine::table::TopicTable;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::net::mailbox::{Listener, ShardLink, ShardMsg, WAKER};
use crossbeam_channel::{bounded, Sender};
use mio::net::TcpListener;
use mio::{Poll, Waker};
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;

/// One bounded channel per router; the configured capacity is shared out.
/// In cluster mode publishers fill the writer's channel (`start_cluster`)
/// and the routers' carry what the cluster's reader sends, mostly runs of
/// up to `BLOCK` updates each: their room is cut by that much, so they
/// hold about as many updates as they would hold one at a time.
pub(super) fn ingest_channels(
    config: &Config,
) -> (Inbox, Vec<crossbeam_channel::Receiver<Ingested>>) {
    let n = config.routers.max(1);
    let per_op = match config.redis {
        Some(_) => crate::cluster::RUN_UPDATES,
        None => 1,
    };
    let room = (config.ingest_capacity / n / per_op).max(1);
    let (txs, rxs) = (0..n).map(|_| bounded(room)).unzip();
    (Inbox::new(txs), rxs)
}

/// The interest dispatcher, handing each event to every shard.
pub(super) fn start_interest(
    events: crossbeam_channel::Receiver<crate::interest::Interest>,
    links: &[ShardLink],
) -> Result<crate::interest::Dispatcher> {
    let to_shards = links.to_vec();
    let give = move |e: Arc<crate::interest::Interest>| {
        for link in &to_shards {
            let _ = link.try_send(ShardMsg::Interest(e.clone()));
        }
    };
    Ok(crate::interest::Dispatcher::start(events, Box::new(give))?)
}

/// What publishers send into, and, in cluster mode, the link to Redis:
/// publishers then feed the link's writer (Redis numbers every update),
/// and the router is fed by the link's reader; without it, they feed the
/// router directly.
pub(super) type Ingress = (
    Inbox,
    Option<Sender<Arc<str>>>,
    Option<crate::cluster::Cluster>,
);

pub(super) fn start_cluster(
    config: &Config,
    table: &Arc<TopicTable>,
    ingest: &Inbox,
    metrics: &Arc<Metrics>,
) -> Result<Ingress> {
    let Some(url) = &config.redis else {
        return Ok((ingest.clone(), None, None));
    };
    let (tx, published) = bounded(config.ingest_capacity);
    let (ltx, loads) = bounded(4096);
    let ca = match &config.redis_ca_file {
        Some(path) => Some(crate::config::read_redis_ca(path)?),
        None => None,
    };
    let cluster = crate::cluster::Cluster::start(crate::cluster::Wiring {
        url: url.clone(),
        ca,
        table: table.clone(),
        router: ingest.clone(),
        published,
        loads,
        history_len: config.history_len,
        trades_snapshot: config.trades_snapshot,
        metrics: metrics.clone(),
    })?;
    Ok((Inbox::new(vec![tx]), Some(ltx), Some(cluster)))
}

/// The listeners `start` binds, with their real addresses.
pub(super) struct Bound {
    pub listeners: Vec<(TcpListener, Listener)>,
    pub local_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
}

impl Bound {
    pub fn bind(config: &Config, tls: bool) -> Result<Bound> {
        let mut listeners = Vec::new();
        let mut local_addr = None;
        if config.plain {
            let listener = bind(config.listen)?;
            local_addr = Some(listener.local_addr()?);
            listeners.push((TcpListener::from_std(listener), Listener::Plain));
        }
        // `validate` made sure TLS has its files and address, and that
        // something listens.
        let mut tls_addr = None;
        if let (true, Some(addr)) = (tls, config.tls_listen) {
            let l = bind(addr)?;
            tls_addr = Some(l.local_addr()?);
            listeners.push((TcpListener::from_std(l), Listener::Tls));
        }
        let Some(local_addr) = local_addr.or(tls_addr) else {
            return Err(crate::error::ConfigError::NoListener.into());
        };
        Ok(Bound {
            listeners,
            local_addr,
            tls_addr,
        })
    }
}

/// Each shard's poll, mailbox link and mailbox, made before any thread.
pub(super) struct Mailboxes {
    pub polls: Vec<Poll>,
    pub links: Vec<ShardLink>,
    pub receivers: Vec<crossbeam_channel::Receiver<ShardMsg>>,
}

impl Mailboxes {
    pub fn new(shards: usize) -> Result<Mailboxes> {
        let mut m = Mailboxes {
            polls: Vec::new(),
            links: Vec::new(),
            receivers: Vec::new(),
        };
        for _ in 0..shards {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = bounded(SHARD_CHANNEL_BATCHES);
            m.polls.push(poll);
            m.links.push(ShardLink { tx, waker });
            m.receivers.push(rx);
        }
        Ok(m)
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // Lets a restarted daemon bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot bind {addr}: {e}"),
        ))
    })?;
    socket.listen(4096)?;
    Ok(socket.into())
}
