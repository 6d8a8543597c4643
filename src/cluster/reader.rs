//! The subscribing side of the cluster link: follows in Redis what this
//! node's clients want, and feeds the router.
//!
//! - A follow request (from a shard, before a subscribe runs) subscribes
//!   the channel of the topic's partition (every partition for a prefix)
//!   first, then reads the value and history (so nothing published in
//!   between is missed: what the read already holds arrives again and is
//!   dropped as a duplicate), then waits for the router to have applied it
//!   and answers the shard.
//! - A message carries a batch's entries for one partition. Entries of
//!   topics this node follows become numbered updates, clears or statuses
//!   for the router; the others are dropped unparsed. The router asks for
//!   a load when it sees a gap.
//! - Once a second, topics and prefixes no local client wants any more
//!   (and followed for a while) are dropped, and so are the partitions
//!   that no longer hold a followed topic.
//! - When the connection is lost, every followed topic is marked stale
//!   (subscribers see `status`), and on reconnecting everything is
//!   followed and loaded again: a topic whose value moved on meanwhile
//!   reaches its subscribers as a fresh snapshot, one whose store was
//!   emptied (Redis restarted without its data) is cleared, and its next
//!   update starts a new epoch.

use super::endpoint::{Con, Endpoint};
use super::gather::Runs;
use super::message::{self, Entry, Message};
use super::store::{self, PARTITIONS, TOPICS_KEY};
use super::writer::Quiet;
use super::{wall_ns, ClusterLink, FollowRequest, Following, Health, Side};
use crate::engine::inbox::Inbox;
use crate::engine::op::{IngestOp, Ingested, Loaded, Numbered};
use crate::engine::table::TopicTable;
use crate::model::liveness::Liveness;
use crossbeam_channel::Receiver;
use redis::Connection;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the pub/sub read waits before looking at requests again.
const POLL: Duration = Duration::from_millis(10);
/// How often unwanted topics are looked for, and how long a topic stays
/// followed at least.
const SWEEP: Duration = Duration::from_secs(1);
const KEEP_AT_LEAST: Duration = Duration::from_secs(5);
/// Most topics read back per round trip.
const LOAD_BATCH: usize = 256;
/// Most topics one prefix follow loads.
const PREFIX_TOPICS: isize = 100_000;

pub(super) struct Reader {
    pub link: Arc<ClusterLink>,
    pub endpoint: Endpoint,
    pub table: Arc<TopicTable>,
    pub router: Inbox,
    pub requests: Receiver<FollowRequest>,
    pub loads: Receiver<Arc<str>>,
    pub history_len: usize,
    pub trades_snapshot: usize,
}

impl Reader {
    pub fn run(self) {
        let mut backoff = Duration::from_millis(50);
        let mut connected_before = false;
        let mut quiet = Quiet::default();
        while !self.link.stopping() {
            match self.connect() {
                Ok((mut sub, mut cmd)) => {
                    if connected_before {
                        self.link.metrics.cluster.reconnects.fetch_add(1, Relaxed);
                    }
                    connected_before = true;
                    quiet.reset();
                    backoff = Duration::from_millis(50);
                    if let Err(e) = self.serve(&mut sub, &mut cmd) {
                        if quiet.speak() {
                            log::warn!(
                                "cluster: lost the subscription to Redis ({e}); reconnecting"
                            );
                        }
                    }
                    self.link.set(Side::Reader, Health::Down);
                    self.mark_all_stale();
                }
                Err(e) => {
                    self.link.set(Side::Reader, Health::Down);
                    log::warn!(
                        "cluster: cannot reach Redis to subscribe ({e}); retrying in {backoff:?}"
                    );
                    // Followers keep being admitted meanwhile: they get the
                    // values this node holds, and the rest on reconnecting.
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !self.link.stopping() {
                        self.admit_requests_offline();
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<(Connection, Con)> {
        let sub = self.endpoint.pubsub()?;
        let cmd = self.endpoint.command()?;
        Ok((sub, cmd))
    }

    /// Serves one pair of connections until one fails or the server stops.
    fn serve(&self, sub: &mut Connection, cmd: &mut Con) -> redis::RedisResult<()> {
        let mut ps = sub.as_pubsub();
        ps.set_read_timeout(Some(POLL))?;
        // Everything followed so far, again: subscribe first, then load.
        let (topics, prefixes): (Vec<Arc<str>>, Vec<Arc<str>>) = {
            let f = self.link.following.read();
            (
                f.topics.keys().cloned().collect(),
                f.prefixes.keys().cloned().collect(),
            )
        };
        let mut parts = Subscribed::default();
        parts.sync(&mut ps, &self.link.following.read())?;
        let mut reload: Vec<Arc<str>> = topics;
        for p in &prefixes {
            reload.extend(self.table.names_under(p));
            reload.extend(self.listed_under(cmd, p)?);
        }
        reload.sort();
        reload.dedup();
        self.load_all(cmd, &reload)?;
        self.link.set(Side::Reader, Health::Up);
        log::info!(
            "cluster: subscribed to Redis ({} topics, {} prefixes followed)",
            reload.len(),
            prefixes.len()
        );
        let mut next_sweep = Instant::now() + SWEEP;
        while !self.link.stopping() {
            while let Ok(req) = self.requests.try_recv() {
                self.follow(&mut ps, &mut parts, cmd, req)?;
            }
            let mut wanted = HashSet::new();
            while let Ok(t) = self.loads.try_recv() {
                wanted.insert(t);
            }
            if !wanted.is_empty() {
                let wanted: Vec<Arc<str>> = wanted.into_iter().collect();
                self.load_all(cmd, &wanted)?;
            }
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + SWEEP;
                self.sweep(&mut ps, &mut parts)?;
            }
            match ps.get_message() {
                Ok(msg) => self.on_message(msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A partition's message: the entries of followed topics go to the
    /// router, in order, a run of a topic's updates as one operation; the
    /// rest are dropped.
    fn on_message(&self, payload: &[u8]) {
        let names = self.table.field_names();
        // One clock reading per message, not per entry: its entries were
        // numbered together.
        let (now, arrived) = (wall_ns(), Instant::now());
        let mut runs = Runs::new(&self.router, arrived);
        let mut ran = (0, 0);
        // Held while the message is read, routers waited for included:
        // only this thread ever writes it, so the shards reading it are
        // never kept waiting (and no list of the entries is made first).
        let following = self.link.following.read();
        // A run's entries share its header's topic: looked up once.
        let mut last: Option<(&str, bool)> = None;
        for entry in message::entries(payload) {
            let topic = entry.topic();
            let covered = match last {
                Some((t, covered)) if std::ptr::eq(t, topic) => covered,
                _ => last.insert((topic, following.covers_topic(topic))).1,
            };
            if !covered {
                continue;
            }
            match runs.add(&entry, names) {
                Some(true) => {
                    // Counted below, once: a message's runs were numbered
                    // by one script call, at one wall time.
                    if let Entry::Run { wall_ns, .. } = entry {
                        ran = (wall_ns, ran.1 + 1);
                    }
                }
                Some(false) => log::warn!("cluster: ignoring an entry that is not tickcast's"),
                None => {
                    if let Some(op) = self.line_op(&entry, names, now) {
                        let _ = self.router.send(Ingested { op, at: arrived });
                    }
                }
            }
        }
        runs.close();
        if ran.1 > 0 {
            self.link
                .metrics
                .cluster
                .lag(now.saturating_sub(ran.0), ran.1);
        }
    }

    /// The operation of an entry that is not part of a positional run (a
    /// clear, a mark, a book change, an update of the older forms).
    fn line_op(&self, entry: &Entry, names: &[Box<str>], now: u64) -> Option<IngestOp> {
        let Some(msg) = entry.parse(names) else {
            log::warn!("cluster: ignoring an entry that is not tickcast's");
            return None;
        };
        Some(match msg {
            Message::Update {
                update,
                epoch,
                seq,
                wall_ns: numbered,
            } => {
                self.link
                    .metrics
                    .cluster
                    .lag(now.saturating_sub(numbered), 1);
                IngestOp::Numbered(Box::new(Numbered { update, epoch, seq }))
            }
            Message::Clear(t) => IngestOp::Clear(t),
            Message::Stale(t, stale) => IngestOp::Stale(t, stale),
            Message::StaleAfter(t, after) => IngestOp::StaleAfter(t, after),
        })
    }

    fn send(&self, op: IngestOp) {
        let _ = self.router.send(Ingested {
            op,
            at: Instant::now(),
        });
    }

    /// Follows what a shard asks for, then answers it once the router has
    /// the values.
    fn follow(
        &self,
        ps: &mut redis::PubSub<'_>,
        parts: &mut Subscribed,
        cmd: &mut Con,
        req: FollowRequest,
    ) -> redis::RedisResult<()> {
        let now = Instant::now();
        let mut new_prefixes = Vec::new();
        let mut load = Vec::new();
        {
            let mut f = self.link.following.write();
            for p in &req.prefixes {
                if !f.covers_prefix(p) {
                    f.prefixes.insert(p.clone(), now);
                    new_prefixes.push(p.clone());
                }
            }
            for t in &req.topics {
                if f.covers_topic(t) {
                    // Refreshed, so a sweep does not drop it before the join.
                    if let Some(at) = f.topics.get_mut(t) {
                        *at = now;
                    }
                    continue;
                }
                f.topics.insert(t.clone(), now);
                load.push(t.clone());
            }
        }
        // Subscribed before the values are read: nothing falls between.
        parts.sync(ps, &self.link.following.read())?;
        for p in &new_prefixes {
            load.extend(self.listed_under(cmd, p)?);
        }
        self.load_all(cmd, &load)?;
        self.barrier();
        let _ = req.done.send(());
        Ok(())
    }

    /// While Redis cannot be reached: requests are taken (subscribed and
    /// loaded on reconnecting) and answered at once.
    fn admit_requests_offline(&self) {
        while let Ok(req) = self.requests.try_recv() {
            let now = Instant::now();
            let mut f = self.link.following.write();
            for p in req.prefixes {
                f.prefixes.entry(p).or_insert(now);
            }
            for t in req.topics {
                f.topics.entry(t).or_insert(now);
            }
            drop(f);
            let _ = req.done.send(());
        }
    }

    /// Waits until the router has applied everything sent so far.
    fn barrier(&self) {
        // Every router: a follow's topics may belong to any of them.
        let _ = self.router.barrier(Duration::from_secs(5));
    }

    /// Reads topics' values and histories, `LOAD_BATCH` per round trip, and
    /// hands them to the router in order.
    fn load_all(&self, cmd: &mut Con, topics: &[Arc<str>]) -> redis::RedisResult<()> {
        for chunk in topics.chunks(LOAD_BATCH) {
            let cap = |t: &str| store::history_cap(t, self.history_len, self.trades_snapshot);
            let cmds = chunk.iter().map(|t| store::read_cmd(t, cap(t)));
            let replies: Vec<store::ReadReply> = cmd.query_all(cmds.collect())?;
            self.link
                .metrics
                .cluster
                .loads
                .fetch_add(chunk.len() as u64, Relaxed);
            for (topic, reply) in chunk.iter().zip(replies) {
                let stored = store::topic_of(topic, reply, cap(topic), self.table.field_names());
                self.send(IngestOp::Load(Box::new(Loaded {
                    topic: topic.to_string(),
                    value: stored.value,
                    history: stored.history,
                    stale_after: stored.stale_after,
                    book: stored.book,
                })));
            }
        }
        Ok(())
    }

    /// Topics the cluster has published under `prefix`.
    fn listed_under(&self, cmd: &mut Con, prefix: &str) -> redis::RedisResult<Vec<Arc<str>>> {
        let start = format!("[{prefix}");
        // Every name under the prefix sorts before the prefix followed by
        // the highest byte (names are ASCII).
        let end = format!("({prefix}\u{7f}");
        let names: Vec<String> = redis::cmd("ZRANGE")
            .arg(TOPICS_KEY)
            .arg(start)
            .arg(end)
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(PREFIX_TOPICS)
            .query(cmd.like())?;
        Ok(names.into_iter().map(Arc::from).collect())
    }

    /// Drops what no local client wants any more, then the partitions that
    /// hold nothing followed. A prefix's topics that are still wanted by
    /// name are followed by name from then on (their partitions stay
    /// subscribed, so nothing falls between).
    fn sweep(&self, ps: &mut redis::PubSub<'_>, parts: &mut Subscribed) -> redis::RedisResult<()> {
        let now = Instant::now();
        let old = |at: &Instant| now.duration_since(*at) >= KEEP_AT_LEAST;
        let (topics, prefixes): (Vec<Arc<str>>, Vec<Arc<str>>) = {
            let f = self.link.following.read();
            let t = f
                .topics
                .iter()
                .filter(|(_, at)| old(at))
                .map(|(t, _)| t.clone());
            let p = f
                .prefixes
                .iter()
                .filter(|(_, at)| old(at))
                .map(|(p, _)| p.clone());
            (t.collect(), p.collect())
        };
        for p in prefixes {
            if self.table.prefix_wanted(&p) {
                continue;
            }
            let under = self.table.names_under(&p);
            let mut f = self.link.following.write();
            f.prefixes.remove(&p);
            for t in &under {
                if self.table.wanted(t) && !f.topics.contains_key(t) {
                    f.topics.insert(t.clone(), now);
                }
            }
            let gone: Vec<Arc<str>> = under.into_iter().filter(|t| !f.covers_topic(t)).collect();
            drop(f);
            for t in gone {
                self.send(IngestOp::Unfollow(t.to_string()));
            }
        }
        for t in topics {
            let mut f = self.link.following.write();
            // Checked under the write lock: a shard checks and joins under
            // the read lock, so no join falls between this check and the
            // removal.
            if self.table.wanted(&t) {
                continue;
            }
            f.topics.remove(&t);
            let still = f.covers_topic(&t);
            drop(f);
            if !still {
                self.send(IngestOp::Unfollow(t.to_string()));
            }
        }
        parts.sync(ps, &self.link.following.read())
    }

    /// The link is down: every followed topic may be out of date.
    fn mark_all_stale(&self) {
        let (topics, prefixes): (Vec<Arc<str>>, Vec<Arc<str>>) = {
            let f = self.link.following.read();
            (
                f.topics.keys().cloned().collect(),
                f.prefixes.keys().cloned().collect(),
            )
        };
        let mut all = topics;
        for p in &prefixes {
            all.extend(self.table.names_under(p));
        }
        for t in all {
            self.send(IngestOp::Stale(t.to_string(), Liveness::Stale));
        }
    }
}

/// The partition channels this reader's connection is subscribed to.
#[derive(Default)]
struct Subscribed(Vec<bool>);

impl Subscribed {
    /// Subscribes the partitions `f` needs and unsubscribes the rest: every
    /// partition while a prefix is followed (a prefix's topics hash
    /// anywhere), otherwise those of the followed topics.
    fn sync(&mut self, ps: &mut redis::PubSub<'_>, f: &Following) -> redis::RedisResult<()> {
        let all = !f.prefixes.is_empty();
        let mut want = vec![all; PARTITIONS as usize];
        if !all {
            for t in f.topics.keys() {
                want[store::partition(t) as usize] = true;
            }
        }
        self.0.resize(PARTITIONS as usize, false);
        for (p, (have, want)) in self.0.iter_mut().zip(want).enumerate() {
            if *have == want {
                continue;
            }
            let channel = store::channel(p as u32);
            match want {
                true => ps.subscribe(channel)?,
                false => ps.unsubscribe(channel)?,
            }
            *have = want;
        }
        Ok(())
    }
}
