//! The publishing side of the cluster link: what this node's publishers
//! publish goes to Redis in pipelined batches (up to `BATCH` operations per
//! round trip), numbered there by `script::SCRIPT`, one script call per
//! partition the batch touches. Nothing is applied locally: the update
//! comes back through the reader like any other node's.
//!
//! While Redis cannot be reached the batch in hand is kept and sent again
//! once it can; publishers meanwhile fill the bounded channel and then
//! wait (`publish`), or get `Full` (`try_publish`) or `Timeout`
//! (`publish_timeout`). Nothing is dropped. A batch cut off by a lost
//! connection is sent again whole, under the same batch number, and Redis
//! skips the partitions it had numbered already: exactly once.

use super::endpoint::{Con, Endpoint, Started};
use super::numbering::Numbering;
use super::script::SCRIPT;
use super::store::TOPICS_KEY;
use super::{wall_ns, ClusterLink, Health, Side};
use crate::engine::op::Ingested;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most operations per pipeline. Large, because Redis's cost goes by runs
/// (a topic's updates together in one script call), not by updates: a
/// writer that falls behind sends longer runs and catches up. At 4,096 a
/// full batch of the benchmark's 1,000 topics made runs of four; at 32,768
/// Redis spends 1.3 µs per update instead of 3 (BENCHMARKS.md, "Issue 24").
/// A batch is only what arrived during the previous round trip, so an idle
/// writer sends one update at once, and only a writer already behind
/// sends a large batch: each partition's script call of it holds Redis
/// about a millisecond.
const BATCH: usize = 32768;
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
    /// Looked up for every update sent: a fast hash (the std one, SipHash,
    /// showed in the writer's profile).
    listed: HashSet<String, foldhash::fast::RandomState>,
}

/// The writer's connection to Redis: the state its loop moves through.
///
/// `Down` → `Up` when a connection is made and the script loaded; `Up` →
/// `Down` when a ping or a send finds the connection lost, or Redis no
/// longer knows the script. Unacknowledged batches survive both: they are
/// sent again, in order and under their numbers, once the writer is up.
enum Conn {
    /// Not connected: try again at `retry_at`.
    Down { retry_at: Instant },
    /// Connected; Redis last answered at `last_contact`.
    Up {
        session: Box<Session>,
        last_contact: Instant,
    },
}

/// How many batches may be in Redis's hands unacknowledged: two, so the
/// writer builds and sends the next while Redis runs the last (one server;
/// a Redis Cluster connection runs each pipeline to the end).
const IN_FLIGHT: usize = 2;

/// Operations taken from publishers, not yet acknowledged by Redis.
struct Batch {
    /// Its number: kept when it is sent again, so Redis knows it.
    no: u64,
    ops: Vec<Ingested>,
    /// Sent on the current connection (None: to send).
    sent: Option<Sent>,
}

/// A batch sent, its replies not yet read.
struct Sent {
    replies: Started,
    /// Its script calls (the first replies).
    calls: usize,
    /// Topics it lists in `tc:topics` for the first time.
    new_topics: Vec<String>,
}

/// Everything the writer's loop carries between turns.
struct Machine {
    conn: Conn,
    /// Batches not yet acknowledged, oldest first (at most `IN_FLIGHT`).
    unacked: VecDeque<Batch>,
    next_no: u64,
    /// The wait before the next connection attempt, doubled per failure.
    backoff: Duration,
    /// Stopping: the grace for what is queued ends then.
    stop_at: Option<Instant>,
    /// Connected once already: the next connection is a reconnect.
    was_up: bool,
    quiet: Quiet,
    /// Book changes Redis refused: said once per `Quiet::EVERY`.
    refusals: Quiet,
    /// Emptied batch buffers, reused while the writer is busy: a full
    /// batch is 32,768 operations (about 8 MB), and making each afresh
    /// grew it by doubling (copying it each time) into new pages that
    /// faulted in one by one and went back to the kernel when it was
    /// freed; perf put that at a third of the writer's time. Dropped
    /// when the writer goes idle, so a quiet node holds none.
    spare: Vec<Vec<Ingested>>,
}

/// What taking from the publishers found.
enum Fill {
    /// Operations to send.
    Batch(Vec<Ingested>),
    /// Nothing came within the wait.
    Idle,
    /// Every publisher handle is gone.
    Closed,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);

impl Writer {
    /// The loop: connect when down, take a batch while fewer than
    /// `IN_FLIGHT` are unacknowledged, send, read the oldest's replies.
    /// Ends when the link stops (after a bounded grace for what is queued)
    /// or every publisher is gone.
    pub fn run(self) {
        let mut m = Machine {
            conn: Conn::Down {
                retry_at: Instant::now(),
            },
            unacked: VecDeque::with_capacity(IN_FLIGHT),
            next_no: 1,
            backoff: FIRST_BACKOFF,
            stop_at: None,
            was_up: false,
            quiet: Quiet::default(),
            refusals: Quiet::default(),
            spare: Vec::new(),
        };
        loop {
            if self.done_stopping(&mut m) {
                break;
            }
            // Connected even while idle, so the link's health is known.
            if matches!(m.conn, Conn::Down { retry_at } if Instant::now() >= retry_at) {
                self.connect_step(&mut m);
            }
            if m.unacked.len() < IN_FLIGHT {
                // Waits only when nothing is in flight.
                let wait = m.unacked.is_empty().then_some(Duration::from_millis(100));
                match self.fill(wait, &mut m.spare) {
                    Fill::Batch(ops) => {
                        m.unacked.push_back(Batch {
                            no: m.next_no,
                            ops,
                            sent: None,
                        });
                        m.next_no += 1;
                    }
                    Fill::Idle if m.unacked.is_empty() => {
                        m.spare = Vec::new();
                        self.keep_alive(&mut m);
                        continue;
                    }
                    Fill::Closed if m.unacked.is_empty() => break,
                    Fill::Idle | Fill::Closed => {}
                }
            }
            self.send_step(&mut m);
        }
        let left: usize = m.unacked.iter().map(|b| b.ops.len()).sum::<usize>() + self.input.len();
        if left > 0 {
            log::warn!("cluster: stopped with {left} operations not sent to Redis");
        }
    }

    /// The link is stopping and the writer is done: nothing left to send,
    /// or the grace is over.
    fn done_stopping(&self, m: &mut Machine) -> bool {
        if !self.link.stopping() {
            return false;
        }
        let at = *m.stop_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
        Instant::now() >= at || (m.unacked.is_empty() && self.input.is_empty())
    }

    /// `Down` → `Up` (every unacknowledged batch to send again), or `Down`
    /// again with a longer wait.
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
                for b in &mut m.unacked {
                    b.sent = None;
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

    /// Takes up to `BATCH` operations, waiting up to `wait` for the first
    /// (not at all without one).
    fn fill(&self, wait: Option<Duration>, spare: &mut Vec<Vec<Ingested>>) -> Fill {
        let first = match wait {
            Some(w) => self.input.recv_timeout(w),
            None => self.input.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }),
        };
        let first = match first {
            Ok(op) => op,
            Err(RecvTimeoutError::Timeout) => return Fill::Idle,
            Err(RecvTimeoutError::Disconnected) => return Fill::Closed,
        };
        let mut batch = spare.pop().unwrap_or_default();
        // What is queued now, at most a batch: one allocation when no
        // spare buffer is large enough, none when one is.
        batch.reserve(1 + self.input.len().min(BATCH - 1));
        batch.push(first);
        batch.extend(self.input.try_iter().take(BATCH - 1));
        Fill::Batch(batch)
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

    /// Sends every batch not yet sent on this connection, then, when no
    /// more can go out (the window is full or nothing waits), reads the
    /// oldest's replies and acknowledges it.
    fn send_step(&self, m: &mut Machine) {
        let Conn::Up {
            session,
            last_contact,
        } = &mut m.conn
        else {
            // Not connected: wait for the next attempt, batches in hand.
            if let Conn::Down { retry_at } = m.conn {
                std::thread::sleep(retry_at.saturating_duration_since(Instant::now()));
            }
            return;
        };
        for (i, b) in m.unacked.iter_mut().enumerate() {
            if b.sent.is_none() {
                match self.send(session, b.no, &b.ops) {
                    Ok(sent) => b.sent = Some(sent),
                    Err(e) => return self.failed(m, i, e),
                }
            }
        }
        if m.unacked.len() < IN_FLIGHT && !self.input.is_empty() {
            return;
        }
        let Some(oldest) = m.unacked.front_mut() else {
            return;
        };
        let Some(sent) = oldest.sent.take() else {
            return;
        };
        let replies = match sent.replies {
            Started::Pending(n) => session.con.finish(n),
            Started::Done(replies) => Ok(replies),
        };
        match replies {
            Ok(replies) => {
                *last_contact = Instant::now();
                session.listed.extend(sent.new_topics);
                let calls = &replies[..sent.calls.min(replies.len())];
                let count = |f: fn(i64) -> i64| -> u64 {
                    let of = |r: &redis::Value| match r {
                        redis::Value::Int(n) => f(*n).max(0) as u64,
                        _ => 0,
                    };
                    calls.iter().map(of).sum()
                };
                // 0: applied before (sent again); 1 + the book changes
                // Redis refused (they would cross the book).
                let skipped = count(|n| i64::from(n == 0));
                let refused_books = count(|n| n - 1);
                let metrics = &self.link.metrics;
                metrics.cluster.round_trips.fetch_add(1, Relaxed);
                let ops = oldest.ops.len() as u64;
                metrics.cluster.batched.fetch_add(ops, Relaxed);
                metrics.cluster.skipped.fetch_add(skipped, Relaxed);
                if refused_books > 0 {
                    metrics
                        .router
                        .refused_books
                        .fetch_add(refused_books, Relaxed);
                    if m.refusals.speak() {
                        log::warn!(
                            "cluster: Redis refused {refused_books} book changes that would cross \
                             a book or pass its depth (tickcast_updates_refused_total{{reason=\"book\"}})"
                        );
                    }
                }
                if let Some(done) = m.unacked.pop_front() {
                    let mut ops = done.ops;
                    ops.clear();
                    if m.spare.len() < IN_FLIGHT {
                        m.spare.push(ops);
                    }
                }
            }
            Err(e) => self.failed(m, 0, e),
        }
    }

    /// Batch `i` failed: lost connection (everything unacknowledged goes
    /// again once reconnected), script gone, or refused (batch `i` dropped).
    fn failed(&self, m: &mut Machine, i: usize, e: redis::RedisError) {
        if e.code() == Some("NOSCRIPT") {
            // Redis restarted (or its script cache was flushed): connect
            // again, which loads the script.
            m.conn = Conn::Down {
                retry_at: Instant::now(),
            };
        } else if lost_connection(&e) {
            if m.quiet.speak() {
                log::warn!("cluster: publishing to Redis failed ({e}); reconnecting");
            }
            self.lost(m);
        } else if let Some(b) = m.unacked.remove(i) {
            // Refused, not lost: sending it again would be refused again.
            // Said loudly and counted, never silently.
            log::error!(
                "cluster: Redis refused a batch of {} operations, which are dropped: {e}",
                b.ops.len()
            );
            let refused = &self.link.metrics.cluster.refused;
            refused.fetch_add(b.ops.len() as u64, Relaxed);
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
            listed: HashSet::default(),
        })
    }

    /// Starts batch `no` as one pipeline: one round trip (per node), one
    /// script call per partition, and the topics new to `tc:topics`.
    fn send(&self, s: &mut Session, no: u64, batch: &[Ingested]) -> redis::RedisResult<Sent> {
        let numbering = Numbering {
            sha: &s.sha,
            writer: &self.id,
            history_len: self.history_len,
            trades_snapshot: self.trades_snapshot,
            fields: &self.fields,
            wall_ns: wall_ns(),
        };
        let (mut cmds, updated) = numbering.calls(no, batch);
        let calls = cmds.len();
        let new_topics: Vec<&str> = updated
            .into_iter()
            .filter(|t| !s.listed.contains(*t))
            .collect();
        if !new_topics.is_empty() {
            let mut add = redis::cmd("ZADD");
            add.arg(TOPICS_KEY);
            for t in &new_topics {
                add.arg(0).arg(*t);
            }
            cmds.push(add);
        }
        Ok(Sent {
            replies: s.con.start(cmds)?,
            calls,
            new_topics: new_topics.into_iter().map(String::from).collect(),
        })
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
