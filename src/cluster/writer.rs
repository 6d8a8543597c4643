//! The publishing side of the cluster link: what this node's publishers
//! publish goes to Redis in pipelined batches (up to `BATCH` operations per
//! round trip), numbered there by `numbering::SCRIPT`, one script call per
//! partition the batch touches. Nothing is applied locally: the update
//! comes back through the reader like any other node's.
//!
//! While Redis cannot be reached the batch in hand is kept and sent again
//! once it can; publishers meanwhile fill the bounded channel and then
//! wait (`publish`), or get `Full` (`try_publish`) or `Timeout`
//! (`publish_timeout`). Nothing is dropped. A batch cut off by a lost
//! connection is sent again whole, under the same batch number, and Redis
//! skips the partitions it had numbered already: exactly once.

use super::endpoint::{Con, Endpoint};
use super::numbering::{Numbering, SCRIPT};
use super::store::TOPICS_KEY;
use super::{wall_ns, ClusterLink, Health, Side};
use crate::engine::op::{IngestOp, Ingested};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most operations per pipeline. Large, so that each partition's share of
/// a full batch pays for its script call (`PARTITIONS` calls per batch at
/// most); a batch is only what arrived during the previous round trip, so
/// an idle writer sends one update at once.
const BATCH: usize = 4096;
/// How often an idle writer checks that Redis still answers.
const IDLE_PING: Duration = Duration::from_secs(1);
/// How long a stopping writer keeps trying to send what is queued.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub(super) struct Writer {
    /// This writer's id in Redis (`numbering`): random per process.
    pub id: String,
    pub link: Arc<ClusterLink>,
    pub endpoint: Endpoint,
    pub input: Receiver<Ingested>,
    pub router: crate::engine::inbox::Inbox,
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

/// The writer's connection to Redis: the state its loop moves through.
///
/// `Down` → `Up` when a connection is made and the script loaded; `Up` →
/// `Down` when a ping or a send finds the connection lost, or Redis no
/// longer knows the script. The batch in hand survives both: it is sent
/// whole once the writer is up again.
enum Conn {
    /// Not connected: try again at `retry_at`.
    Down { retry_at: Instant },
    /// Connected; Redis last answered at `last_contact`.
    Up {
        session: Box<Session>,
        last_contact: Instant,
    },
}

/// Everything the writer's loop carries between turns.
struct Machine {
    conn: Conn,
    /// Operations taken from publishers, not yet accepted by Redis.
    batch: Vec<Ingested>,
    /// The batch's number: kept when it is sent again, so Redis knows it.
    batch_no: u64,
    /// The wait before the next connection attempt, doubled per failure.
    backoff: Duration,
    /// Stopping: the grace for what is queued ends then.
    stop_at: Option<Instant>,
    /// Connected once already: the next connection is a reconnect.
    was_up: bool,
    quiet: Quiet,
}

/// What filling an empty batch found.
enum Fill {
    /// Operations to send.
    Batch,
    /// Nothing came within the wait.
    Idle,
    /// Every publisher handle is gone.
    Closed,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);

impl Writer {
    /// The loop: connect when down, take a batch when empty, send it. Ends
    /// when the link stops (after a bounded grace for what is queued) or
    /// every publisher is gone.
    pub fn run(self) {
        let mut m = Machine {
            conn: Conn::Down {
                retry_at: Instant::now(),
            },
            batch: Vec::with_capacity(BATCH),
            batch_no: 1,
            backoff: FIRST_BACKOFF,
            stop_at: None,
            was_up: false,
            quiet: Quiet::default(),
        };
        loop {
            if self.done_stopping(&mut m) {
                break;
            }
            // Connected even while idle, so the link's health is known.
            if matches!(m.conn, Conn::Down { retry_at } if Instant::now() >= retry_at) {
                self.connect_step(&mut m);
            }
            if m.batch.is_empty() {
                match self.fill(&mut m.batch) {
                    Fill::Batch => {}
                    Fill::Idle => {
                        self.keep_alive(&mut m);
                        continue;
                    }
                    Fill::Closed => break,
                }
            }
            self.send_step(&mut m);
        }
        if !m.batch.is_empty() || !self.input.is_empty() {
            log::warn!(
                "cluster: stopped with {} operations not sent to Redis",
                m.batch.len() + self.input.len()
            );
        }
    }

    /// The link is stopping and the writer is done: nothing left to send,
    /// or the grace is over.
    fn done_stopping(&self, m: &mut Machine) -> bool {
        if !self.link.stopping() {
            return false;
        }
        let at = *m.stop_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
        Instant::now() >= at || (m.batch.is_empty() && self.input.is_empty())
    }

    /// `Down` → `Up`, or `Down` again with a longer wait.
    fn connect_step(&self, m: &mut Machine) {
        match self.connect() {
            Ok(session) => {
                if m.was_up {
                    self.link.metrics.cluster.reconnects.fetch_add(1, Relaxed);
                }
                m.was_up = true;
                m.backoff = FIRST_BACKOFF;
                self.link.set(Side::Writer, Health::Up);
                if m.quiet.reset() {
                    log::info!("cluster: publishing to Redis again");
                }
                m.conn = Conn::Up {
                    session: Box::new(session),
                    last_contact: Instant::now(),
                };
            }
            Err(e) => {
                self.link.set(Side::Writer, Health::Down);
                if m.quiet.speak() {
                    log::warn!(
                        "cluster: cannot reach Redis to publish ({e}); retrying every second at most"
                    );
                }
                m.conn = Conn::Down {
                    retry_at: Instant::now() + m.backoff,
                };
                m.backoff = (m.backoff * 2).min(Duration::from_secs(1));
            }
        }
    }

    /// Takes up to `BATCH` operations, waiting briefly for the first; what
    /// concerns this node only goes to the router directly.
    fn fill(&self, batch: &mut Vec<Ingested>) -> Fill {
        match self.input.recv_timeout(Duration::from_millis(100)) {
            Ok(first) => batch.push(first),
            Err(RecvTimeoutError::Timeout) => return Fill::Idle,
            Err(RecvTimeoutError::Disconnected) => return Fill::Closed,
        }
        while batch.len() < BATCH {
            match self.input.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        self.keep_local(batch);
        match batch.is_empty() {
            true => Fill::Idle,
            false => Fill::Batch,
        }
    }

    /// Idle and up: a ping now and then, so a dead Redis is noticed (and
    /// said) without waiting for the next publish.
    fn keep_alive(&self, m: &mut Machine) {
        let Conn::Up {
            session,
            last_contact,
        } = &mut m.conn
        else {
            return;
        };
        if last_contact.elapsed() < IDLE_PING {
            return;
        }
        *last_contact = Instant::now();
        if let Err(e) = redis::cmd("PING").exec(session.con.like()) {
            if m.quiet.speak() {
                log::warn!("cluster: Redis stopped answering ({e}); reconnecting");
            }
            self.lost(m);
        }
    }

    /// `Up` → `Down`: try again at once (the backoff applies from the next
    /// failure on).
    fn lost(&self, m: &mut Machine) {
        self.link.set(Side::Writer, Health::Down);
        m.conn = Conn::Down {
            retry_at: Instant::now(),
        };
    }

    /// Sends the batch in hand: cleared once Redis took it (or refused it);
    /// kept for the next connection when the connection was lost.
    fn send_step(&self, m: &mut Machine) {
        let Conn::Up {
            session,
            last_contact,
        } = &mut m.conn
        else {
            // Not connected: wait for the next attempt, batch in hand.
            if let Conn::Down { retry_at } = m.conn {
                std::thread::sleep(retry_at.saturating_duration_since(Instant::now()));
            }
            return;
        };
        let cluster = &self.link.metrics.cluster;
        match self.send(session, m.batch_no, &m.batch) {
            Ok(skipped) => {
                cluster.round_trips.fetch_add(1, Relaxed);
                cluster.batched.fetch_add(m.batch.len() as u64, Relaxed);
                cluster.skipped.fetch_add(skipped, Relaxed);
                *last_contact = Instant::now();
                m.batch.clear();
                m.batch_no += 1;
            }
            // Redis restarted (or its script cache was flushed): connect
            // again, which loads the script.
            Err(e) if e.code() == Some("NOSCRIPT") => {
                m.conn = Conn::Down {
                    retry_at: Instant::now(),
                };
            }
            Err(e) if lost_connection(&e) => {
                if m.quiet.speak() {
                    log::warn!("cluster: publishing to Redis failed ({e}); reconnecting");
                }
                self.lost(m);
            }
            Err(e) => {
                // Refused, not lost: sending it again would be refused
                // again. Said loudly and counted, never silently.
                log::error!(
                    "cluster: Redis refused a batch of {} operations, which are dropped: {e}",
                    m.batch.len()
                );
                cluster.refused.fetch_add(m.batch.len() as u64, Relaxed);
                m.batch.clear();
                m.batch_no += 1;
            }
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
        if let Con::Single(c) = &mut con {
            // Named, so an operator (or a test) can tell it in CLIENT LIST.
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(format!("tickcast-writer-{}", self.id))
                .exec(c)?;
        }
        // On every master of a cluster.
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(SCRIPT)
            .query(con.like())?;
        Ok(Session {
            con,
            sha,
            listed: HashSet::new(),
        })
    }

    /// One pipeline for the whole batch: one round trip (per node), one
    /// script call per partition. Returns how many calls Redis skipped as
    /// applied before (a batch sent again after a lost connection).
    fn send(&self, s: &mut Session, batch_no: u64, batch: &[Ingested]) -> redis::RedisResult<u64> {
        let numbering = Numbering {
            sha: &s.sha,
            writer: &self.id,
            history_len: self.history_len,
            trades_snapshot: self.trades_snapshot,
            fields: &self.fields,
            wall_ns: wall_ns(),
        };
        let mut cmds = numbering.calls(batch_no, batch);
        let calls = cmds.len();
        let mut new_topics: HashSet<&str> = HashSet::new();
        for i in batch {
            if let IngestOp::Update(u) = &i.op {
                if !s.listed.contains(u.topic.as_str()) {
                    new_topics.insert(u.topic.as_str());
                }
            }
        }
        if !new_topics.is_empty() {
            let mut add = redis::cmd("ZADD");
            add.arg(TOPICS_KEY);
            for t in &new_topics {
                add.arg(0).arg(*t);
            }
            cmds.push(add);
        }
        let replies: Vec<redis::Value> = s.con.query_all(cmds)?;
        s.listed.extend(new_topics.into_iter().map(String::from));
        let skipped = replies[..calls.min(replies.len())]
            .iter()
            .filter(|r| matches!(r, redis::Value::Int(0)))
            .count();
        Ok(skipped as u64)
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
