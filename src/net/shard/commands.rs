//! Subscriber commands: subscribe (with snapshots), unsubscribe, topics, ping.

use super::Shard;
use crate::engine::epoch::Epoch;
use crate::engine::selector::Selector;
use crate::faults::{self, Fault};
use crate::model::event::{Price, PriceKind};
use crate::model::update::now_ns;
use crate::net::conn::Verdict;
use crate::net::index::NewlyMatched;
use crate::net::merged::EventWriter;
use crate::net::outbound::Outbound;
use crate::net::snapshot_frames::SnapshotFrames;
use crate::net::snapshot_room::{check_room, snapshot_cost, Room};
use crate::net::subscriptions::Subscriptions;
use crate::net::work::Outcome;
use crate::wire::command::{Command, CommandError, Op, Subscribe};
use crate::wire::event::{self, ErrorCode};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Most topics listed in one `topics` reply.
const TOPICS_LIMIT: usize = 10_000;

impl Shard {
    pub(super) fn send_error(&mut self, token: usize, e: CommandError) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let f = event::encode_error(
            &mut self.delivery.fb,
            conn.format,
            e.id.as_ref(),
            e.code,
            &e.message,
        );
        conn.out.push(f);
    }

    /// Runs one command. Its cost is linear in its size and the size is
    /// checked before any work (`max_topics_per_command`); the work done is
    /// returned in the outcome, and bounds what one connection gets per turn.
    /// `now`: the instant the bucket was asked at before parsing, so the
    /// token is taken at the same instant and the clock is read once.
    pub(super) fn on_command(&mut self, token: usize, cmd: Command, now: Instant) -> Outcome {
        let entries = match &cmd.op {
            Op::Subscribe(sub) => sub.topics.len() + sub.since.len(),
            Op::Unsubscribe(list) => list.len(),
            Op::Topics { .. } | Op::Ping | Op::Auth { .. } => 0,
        };
        let cost = 1 + entries;
        if let Some(verdict) = self.rate_limit(token, &cmd.id, now) {
            return Outcome::with(verdict, cost);
        }
        let max = self.ctx.live.config.max_topics_per_command;
        if entries > max {
            let message = format!(
                "the command lists {entries} topics, patterns and resume points; \
                 the limit per command is {max}: split it"
            );
            let code = ErrorCode::TooManyTopics;
            let id = cmd.id;
            self.send_error(token, CommandError { id, code, message });
            return Outcome::go_on(cost);
        }
        Outcome::with(self.follow_then_run(token, cmd), cost)
    }

    /// Runs a command whose size and rate were checked (in cluster mode,
    /// once the node follows what it names: `cluster`).
    pub(super) fn run_command(&mut self, token: usize, cmd: Command) -> Verdict {
        let before = self.conns.get(token).map_or(0, |c| c.subs.len() as i64);
        let result = match cmd.op {
            Op::Subscribe(sub) => self.subscribe(token, &sub, cmd.id),
            Op::Unsubscribe(list) => self.unsubscribe(token, &list, cmd.id),
            Op::Topics { prefix } => self.list_topics(token, &prefix, cmd.id),
            Op::Ping => self.pong(token, cmd.id),
            Op::Auth { token: t } => self.auth(token, &t, cmd.id),
        };
        if let Err(e) = result {
            self.send_error(token, e);
        }
        let Some(conn) = self.conns.get_mut(token) else {
            return Verdict::Continue;
        };
        let after = conn.subs.len() as i64;
        // What the reply and snapshots queued counts at once, so the next
        // command (of any connection) sees it against the budget.
        let (_, grown) = conn.report_holds();
        let m = self.metrics();
        m.queued_bytes.fetch_add(grown, Ordering::Relaxed);
        m.subscriptions.fetch_add(after - before, Ordering::Relaxed);
        Verdict::Continue
    }

    /// Acknowledges with `subscribed` (with the epochs of its exact topics
    /// and the topics resumed), then sends, for every topic the connection
    /// did not receive already, its snapshot, or the updates it missed when
    /// it resumed with `since` and the history still holds them.
    fn subscribe(&mut self, token: usize, sub: &Subscribe, id: Id) -> Result<(), CommandError> {
        faults::hit_if(Fault::Subscribe, || {
            sub.topics.iter().any(|t| t == faults::PANIC_TOPIC)
        });
        let max_len = self.ctx.live.config.max_topic_len;
        let sels = parse_selectors(&sub.topics, max_len, &id)?;
        let max = self.subscribe_allowed(token, &sels, &id)?;
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let new = sels.iter().filter(|s| !conn.subs.contains(s)).count();
        if conn.subs.len() + new > max {
            let message = format!(
                "subscribing to {new} more would make {} subscriptions; the limit per connection is {max}",
                conn.subs.len() + new
            );
            return Err(CommandError {
                id,
                code: ErrorCode::TooManySubscriptions,
                message,
            });
        }
        // What its snapshots would queue at once, known before any is
        // taken. A subscribe whose snapshots pass the connection's limit
        // (or the server's budget) is refused whole, so no client can make
        // the server queue more than `max_outbound_bytes` for it at once.
        let depth = sub.depth.unwrap_or(crate::model::book::DEFAULT_DEPTH);
        let cost = snapshot_cost(&sels, sub.since.keys().map(String::as_str), depth);
        let cfg = &self.ctx.live.config;
        let room = Room {
            held_by_conn: conn.reported_pending,
            conn_limit: cfg.max_outbound_bytes,
            held_by_all: self.ctx.shared.metrics.queued_total().max(0) as usize,
            budget: cfg.max_total_outbound_bytes,
        };
        if let Err((code, message)) = check_room(&cost, room) {
            return Err(CommandError { id, code, message });
        }
        let before = self.book_depths(token, &sels);
        self.set_depths(token, &sels, sub.depth);
        let fresh = self.join(token, &sels, sub);
        self.acknowledge(token, &sels, &fresh, id);
        // After the snapshots: what its old pacing held goes out after them.
        self.repace(token);
        self.restate_books(token, before);
        Ok(())
    }

    /// Queues `subscribed` (with the epochs of the exact topics and the
    /// topics resumed), then what the connection is owed of `fresh`.
    fn acknowledge(&mut self, token: usize, sels: &[Selector], fresh: &[NewlyMatched], id: Id) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let fmt = conn.format;
        // Epochs of the exact topics: from the snapshot taken as the
        // connection joined, else (already receiving it) the table's.
        let mut epochs: Vec<(Arc<str>, Epoch)> = Vec::new();
        for sel in sels {
            if let Selector::Exact(t) = sel {
                let joined = fresh.iter().find(|nm| nm.topic == *t).map(|nm| nm.snapshot);
                if let Some(snap) = joined.or_else(|| self.ctx.table.snapshot(t)) {
                    epochs.push((t.clone(), snap.epoch));
                }
            }
        }
        let epochs: BTreeMap<&str, &str> = epochs.iter().map(|(t, e)| (&**t, e.as_str())).collect();
        let recovered: Vec<&str> = fresh
            .iter()
            .filter(|nm| nm.replay.is_some())
            .map(|nm| &*nm.topic)
            .collect();
        let fb = &mut self.delivery.fb;
        let ack = event::encode_subscribed(fb, fmt, id.as_ref(), sels, &epochs, &recovered);
        conn.out.push(ack);
        let names = self.ctx.table.field_names();
        let enc = &mut EventWriter { fb, fmt, names };
        let zip = super::books::deflate_at(conn, &self.ctx.live.config);
        push_owed((&mut conn.out, zip), enc, &conn.subs, fresh, None);
    }

    /// Adds the connection to the index for each selector (with its rate);
    /// returns what it newly matched, whose snapshots or missed updates it
    /// is owed.
    fn join(&mut self, token: usize, sels: &[Selector], sub: &Subscribe) -> Vec<NewlyMatched> {
        let mut fresh = Vec::new();
        let Some(conn) = self.conns.get_mut(token) else {
            return fresh;
        };
        let (fmt, key) = (conn.format, conn.key);
        let (index, table) = (&mut self.delivery.index, &self.ctx.table);
        for sel in sels {
            conn.subs.set_rate(sel, sub.max_rate);
            let subs = &mut conn.subs;
            match sel.clone() {
                Selector::Exact(t) => {
                    let since = sub.since.get(&*t);
                    fresh.extend(index.add_exact(table, key, fmt, subs, t, since))
                }
                Selector::Prefix(p) => {
                    fresh.extend(index.add_prefix(table, key, fmt, subs, p, &sub.since))
                }
            }
        }
        fresh
    }

    fn unsubscribe(&mut self, token: usize, list: &[String], id: Id) -> Result<(), CommandError> {
        let max_len = self.ctx.live.config.max_topic_len;
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let sels = parse_selectors(list, max_len, &id)?;
        let fmt = conn.format;
        let before = self.book_depths(token, &sels);
        self.withdraw(token, &sels);
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let ack = event::encode_topics(
            &mut self.delivery.fb,
            fmt,
            "unsubscribed",
            id.as_ref(),
            &sels,
        );
        conn.out.push(ack);
        self.restate_books(token, before);
        Ok(())
    }

    /// Ends these subscriptions of the connection (those it has).
    pub(super) fn withdraw(&mut self, token: usize, sels: &[Selector]) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let (fmt, key, subs) = (conn.format, conn.key, &mut conn.subs);
        for sel in sels {
            subs.set_rate(sel, None);
            subs.set_depth(sel, 0);
            match sel {
                Selector::Exact(t) => {
                    self.delivery
                        .index
                        .remove_exact(&self.ctx.table, key, fmt, subs, t)
                }
                Selector::Prefix(p) => {
                    self.delivery
                        .index
                        .remove_prefix(&self.ctx.table, key, fmt, subs, p)
                }
            }
        }
        let subs = &conn.subs;
        conn.backlog.subscriptions_changed(|t| subs.covers(t));
        self.repace(token);
    }

    fn list_topics(&mut self, token: usize, prefix: &str, id: Id) -> Result<(), CommandError> {
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let names = self.ctx.table.list(prefix, TOPICS_LIMIT);
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        let f = event::encode_topics(
            &mut self.delivery.fb,
            conn.format,
            "topics",
            id.as_ref(),
            &names,
        );
        conn.out.push(f);
        Ok(())
    }

    fn pong(&mut self, token: usize, id: Id) -> Result<(), CommandError> {
        if let Some(conn) = self.conns.get_mut(token) {
            let f = event::encode_pong(&mut self.delivery.fb, conn.format, id.as_ref(), now_ns());
            conn.out.push(f);
        }
        Ok(())
    }
}

/// Queues what a connection that just started to receive topics is owed:
/// for each, its snapshot, or the updates it missed when it resumed and the
/// history still held them. `frames`: the snapshot frames of the group of
/// joins this list belongs to, encoded once for the group (a price or
/// trades snapshot is the same for every member of it).
pub(super) fn push_owed(
    (out, deflate_at): (&mut Outbound, Option<usize>),
    enc: &mut EventWriter<'_>,
    subs: &Subscriptions,
    owed: &[NewlyMatched],
    mut frames: Option<&mut SnapshotFrames>,
) {
    let (fmt, names) = (enc.fmt, enc.names);
    for nm in owed {
        let fb = &mut *enc.fb;
        let s = &nm.snapshot;
        if let Some(view) = &nm.book {
            let out = (&mut *out, deflate_at);
            super::books::push_book_snapshot(out, fb, fmt, subs, &nm.topic, s, view);
            continue;
        }
        match &nm.replay {
            Some(missed) => {
                for past in missed {
                    let update = Price::update(&nm.topic, past.seq, past.ts, &past.prices);
                    out.push(event::encode_price(fb, fmt, &update, names));
                }
            }
            None => {
                if let Some(frame) = frames.as_deref().and_then(|f| f.get(&nm.topic)) {
                    out.push(frame);
                    continue;
                }
                let trades: Option<Vec<crate::model::event::Trade>> = nm
                    .trades
                    .as_ref()
                    .map(|l| l.iter().map(|p| (p.seq, p.ts, p.prices)).collect());
                let snapshot = Price {
                    kind: PriceKind::Snapshot,
                    epoch: Some(s.epoch.as_str()),
                    stale: s.stale,
                    trades: trades.as_deref(),
                    ..Price::update(&nm.topic, s.seq, s.ts, &s.prices)
                };
                let frame = event::encode_price(fb, fmt, &snapshot, names);
                if let Some(f) = frames.as_deref_mut() {
                    f.put(&nm.topic, frame);
                }
                out.push(frame);
            }
        }
    }
}

/// A command's `id`, echoed in its reply.
type Id = Option<serde_json::Value>;

/// Parses a command's topics and patterns (duplicates dropped, in linear
/// time); the first bad one refuses the whole command with `bad_topic`.
/// Duplicates are found by their text (a selector's text is one-to-one with
/// it) with foldhash: a 1,024-topic command a client may send without
/// pause hashes each name once, cheaply, and clones nothing to do it.
pub(super) fn parse_selectors(
    list: &[String],
    max_len: usize,
    id: &Id,
) -> Result<Vec<Selector>, CommandError> {
    let mut seen: HashSet<&str, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(list.len(), Default::default());
    let mut out: Vec<Selector> = Vec::with_capacity(list.len());
    for s in list {
        if !seen.insert(s) {
            continue;
        }
        let sel = Selector::parse(s, max_len).map_err(|e| CommandError {
            id: id.clone(),
            code: ErrorCode::BadTopic,
            message: e.to_string(),
        })?;
        out.push(sel);
    }
    Ok(out)
}
