//! The publishing side of the cluster link: what this node's publishers
//! publish goes to Redis in pipelined batches (up to `BATCH` operations per
//! round trip), numbered there by `store::PUBLISH_SCRIPT`. Nothing is
//! applied locally: the update comes back through the reader like any
//! other node's.
//!
//! While Redis cannot be reached the batch in hand is kept and sent again
//! once it can; publishers meanwhile fill the bounded channel and then
//! wait (`publish`), or get `Full` (`try_publish`) or `Timeout`
//! (`publish_timeout`). Nothing is dropped. A batch cut off by a lost
//! connection is sent again whole, so an update Redis applied just before
//! the loss may be numbered twice (at least once, never lost).

use super::endpoint::{Con, Endpoint};
use super::store::{self, PUBLISH_SCRIPT, TOPICS_KEY};
use super::{wall_ns, ClusterLink};
use crate::engine::ingest::{IngestOp, Ingested};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most operations per pipeline.
const BATCH: usize = 512;
/// How often an idle writer checks that Redis still answers.
const IDLE_PING: Duration = Duration::from_secs(1);
/// How long a stopping writer keeps trying to send what is queued.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub(super) struct Writer {
    pub link: Arc<ClusterLink>,
    pub endpoint: Endpoint,
    pub input: Receiver<Ingested>,
    pub router: Sender<Ingested>,
    pub history_len: usize,
    pub trades_snapshot: usize,
    /// The server's extra fields: stored in Redis by name.
    pub fields: Box<[Box<str>]>,
}

/// A connection with the script loaded, and the topics it has listed in
/// `tc:topics` already.
struct Session {
    con: Con,
    sha: String,
    listed: HashSet<String>,
}

impl Writer {
    pub fn run(self) {
        let mut session: Option<Session> = None;
        let mut batch: Vec<Ingested> = Vec::with_capacity(BATCH);
        let mut backoff = Duration::from_millis(50);
        let mut retry_at = Instant::now();
        let mut stop_at: Option<Instant> = None;
        let mut was_up = false;
        let mut last_contact = Instant::now();
        let mut quiet = Quiet::default();
        loop {
            if self.link.stopping() {
                let at = *stop_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                if Instant::now() >= at || (batch.is_empty() && self.input.is_empty()) {
                    break;
                }
            }
            // Connected even while idle, so the link's health is known.
            if session.is_none() && Instant::now() >= retry_at {
                match self.connect() {
                    Ok(s) => {
                        if was_up {
                            self.link.metrics.cluster.reconnects.fetch_add(1, Relaxed);
                        }
                        was_up = true;
                        backoff = Duration::from_millis(50);
                        self.link.set_up(true, true);
                        if quiet.reset() {
                            log::info!("cluster: publishing to Redis again");
                        }
                        last_contact = Instant::now();
                        session = Some(s);
                    }
                    Err(e) => {
                        self.link.set_up(true, false);
                        if quiet.speak() {
                            log::warn!("cluster: cannot reach Redis to publish ({e}); retrying every second at most");
                        }
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
            }
            if batch.is_empty() {
                match self.input.recv_timeout(Duration::from_millis(100)) {
                    Ok(first) => batch.push(first),
                    Err(RecvTimeoutError::Timeout) => {
                        if let Some(s) = session.as_mut() {
                            if last_contact.elapsed() >= IDLE_PING {
                                last_contact = Instant::now();
                                if let Err(e) = redis::cmd("PING").exec(s.con.like()) {
                                    if quiet.speak() {
                                        log::warn!(
                                            "cluster: Redis stopped answering ({e}); reconnecting"
                                        );
                                    }
                                    self.link.set_up(true, false);
                                    session = None;
                                }
                            }
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                while batch.len() < BATCH {
                    match self.input.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                self.keep_local(&mut batch);
                if batch.is_empty() {
                    continue;
                }
            }
            let Some(s) = session.as_mut() else {
                // Not connected: wait for the next attempt, batch in hand.
                std::thread::sleep(retry_at.saturating_duration_since(Instant::now()));
                continue;
            };
            match self.send(s, &batch) {
                Ok(()) => {
                    let m = &self.link.metrics.cluster;
                    m.round_trips.fetch_add(1, Relaxed);
                    m.batched.fetch_add(batch.len() as u64, Relaxed);
                    last_contact = Instant::now();
                    batch.clear();
                }
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    // Redis restarted (or its script cache was flushed).
                    session = None;
                }
                Err(e) if lost_connection(&e) => {
                    if quiet.speak() {
                        log::warn!("cluster: publishing to Redis failed ({e}); reconnecting");
                    }
                    self.link.set_up(true, false);
                    session = None;
                }
                Err(e) => {
                    // Refused, not lost: sending it again would be refused
                    // again. Said loudly and counted, never silently.
                    log::error!(
                        "cluster: Redis refused a batch of {} operations, which are dropped: {e}",
                        batch.len()
                    );
                    let m = &self.link.metrics.cluster;
                    m.refused.fetch_add(batch.len() as u64, Relaxed);
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() || !self.input.is_empty() {
            log::warn!(
                "cluster: stopped with {} operations not sent to Redis",
                batch.len() + self.input.len()
            );
        }
    }

    /// Takes out what only concerns this node (a topic's own
    /// `stale_after`) and hands it to the router directly.
    fn keep_local(&self, batch: &mut Vec<Ingested>) {
        let mut i = 0;
        while i < batch.len() {
            if matches!(batch[i].op, IngestOp::StaleAfter(..)) {
                let _ = self.router.send(batch.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<Session> {
        let mut con = self.endpoint.command()?;
        // On every master of a cluster.
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(PUBLISH_SCRIPT)
            .query(con.like())?;
        Ok(Session {
            con,
            sha,
            listed: HashSet::new(),
        })
    }

    /// One pipeline for the whole batch: one round trip (per node).
    fn send(&self, s: &mut Session, batch: &[Ingested]) -> redis::RedisResult<()> {
        let mut cmds = Vec::with_capacity(batch.len() + 1);
        let wall = wall_ns();
        let mut new_topics = Vec::new();
        for i in batch {
            match &i.op {
                IngestOp::Update(u) => {
                    if !s.listed.contains(&u.topic) {
                        let mut add = redis::cmd("ZADD");
                        add.arg(TOPICS_KEY).arg(0).arg(&u.topic);
                        cmds.push(add);
                        new_topics.push(u.topic.clone());
                    }
                    let cap = store::history_cap(&u.topic, self.history_len, self.trades_snapshot);
                    cmds.push(store::update_cmd(&s.sha, u, cap, wall, &self.fields));
                }
                IngestOp::Clear(t) => {
                    let mut del = redis::cmd("DEL");
                    del.arg(store::value_key(t)).arg(store::history_key(t));
                    cmds.push(del);
                    let mut publish = redis::cmd("PUBLISH");
                    publish.arg(store::channel(t)).arg(format!("C {t}"));
                    cmds.push(publish);
                }
                IngestOp::Stale(t, stale) => {
                    let mut publish = redis::cmd("PUBLISH");
                    publish
                        .arg(store::channel(t))
                        .arg(format!("S {t} {}", u8::from(*stale)));
                    cmds.push(publish);
                }
                // Only ever fed by the reader, not by publishers.
                _ => {}
            }
        }
        s.con.run(cmds)?;
        s.listed.extend(new_topics);
        Ok(())
    }
}

/// A lost or broken connection (send again once reconnected), as opposed
/// to a command Redis refused.
pub(super) fn lost_connection(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// Keeps an outage to a few log lines: the first failure, then one every
/// `EVERY` while it lasts.
#[derive(Default)]
pub(super) struct Quiet {
    since: Option<Instant>,
    last: Option<Instant>,
}

impl Quiet {
    const EVERY: Duration = Duration::from_secs(10);

    /// Should this failure be logged?
    pub fn speak(&mut self) -> bool {
        let now = Instant::now();
        self.since.get_or_insert(now);
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Self::EVERY)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// The outage is over; true when there was one.
    pub fn reset(&mut self) -> bool {
        self.last = None;
        self.since.take().is_some()
    }
}
