//! Subscriber commands: subscribe (with snapshots), unsubscribe, topics, ping.

use super::Shard;
use crate::engine::epoch::Epoch;
use crate::engine::selector::Selector;
use crate::faults::{self, Fault};
use crate::model::book::is_book;
use crate::model::event::{Price, PriceKind};
use crate::model::update::now_ns;
use crate::net::conn::Verdict;
use crate::net::index::NewlyMatched;
use crate::net::merged::EventWriter;
use crate::net::outbound::Outbound;
use crate::net::subscriptions::Subscriptions;
use crate::wire::command::{Command, CommandError, Op, Subscribe};
use crate::wire::event::{self, ErrorCode};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most topics listed in one `topics` reply.
const TOPICS_LIMIT: usize = 10_000;

/// A snapshot event's size without its topic name, by estimate (JSON with a
/// few fields; MessagePack is smaller), for the check before a subscribe.
const SNAPSHOT_BYTES: usize = 96;

/// One `[price, size]` level of a book snapshot, by estimate.
const LEVEL_BYTES: usize = 40;

impl Shard {
    pub(super) fn send_error(&mut self, token: usize, e: CommandError) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let f = event::encode_error(&mut self.fb, conn.format, e.id.as_ref(), e.code, &e.message);
        conn.out.push(f);
    }

    /// Runs one command. Its cost is linear in its size and the size is
    /// checked before any work (`max_topics_per_command`); the work done is
    /// added to `self.spent`, which bounds what one connection gets per turn.
    pub(super) fn on_command(&mut self, token: usize, cmd: Command) -> Verdict {
        let entries = match &cmd.op {
            Op::Subscribe(sub) => sub.topics.len() + sub.since.len(),
            Op::Unsubscribe(list) => list.len(),
            Op::Topics { .. } | Op::Ping | Op::Auth { .. } => 0,
        };
        self.spent += 1 + entries;
        if let Some(verdict) = self.rate_limit(token, &cmd.id) {
            return verdict;
        }
        let max = self.live.config.max_topics_per_command;
        if entries > max {
            let message = format!(
                "the command lists {entries} topics, patterns and resume points; \
                 the limit per command is {max}: split it"
            );
            let code = ErrorCode::TooManyTopics;
            let id = cmd.id;
            self.send_error(token, CommandError { id, code, message });
            return Verdict::Continue;
        }
        self.follow_then_run(token, cmd)
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
        let max_len = self.live.config.max_topic_len;
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
        // taken: those of exact topics and of resumed ones (a wildcard's
        // other snapshots stream out as the client reads, a chunk at a time:
        // `ShardIndex::advance_joins`). A subscribe whose snapshots pass the
        // connection's limit is refused whole, so no client can make the
        // server queue more than `max_outbound_bytes` for it at once.
        let hard = self.live.config.max_outbound_bytes;
        let mut topics = 0;
        let mut estimate = conn.reported_pending;
        let at_once = sels
            .iter()
            .filter_map(|sel| match sel {
                Selector::Exact(t) => Some(t.len()),
                Selector::Prefix(_) => None,
            })
            .chain(sub.since.keys().map(String::len));
        for name_len in at_once {
            topics += 1;
            estimate += SNAPSHOT_BYTES + name_len;
        }
        // A book's snapshot lists up to `depth` levels a side.
        let depth = sub.depth.unwrap_or(crate::model::book::DEFAULT_DEPTH);
        let books = sels
            .iter()
            .filter(|s| matches!(s, Selector::Exact(t) if is_book(t)));
        estimate += books.count() * depth * 2 * LEVEL_BYTES;
        if estimate > hard {
            let message = format!(
                "the snapshots of {topics} topics (about {estimate} bytes with what is queued) \
                 would pass the per-connection limit of {hard} bytes; subscribe to narrower patterns"
            );
            let code = ErrorCode::SnapshotTooLarge;
            return Err(CommandError { id, code, message });
        }
        // Nor may it take the server past its budget for all connections.
        let budget = self.live.config.max_total_outbound_bytes;
        let held = self.shared.metrics.queued_total().max(0) as usize;
        let adds = estimate - conn.reported_pending;
        if held + adds > budget {
            let message = format!(
                "the server holds {held} bytes for its connections; the snapshots of {topics} \
                 topics (about {adds} bytes) would pass its budget of {budget} bytes: try again later"
            );
            let code = ErrorCode::SnapshotTooLarge;
            return Err(CommandError { id, code, message });
        }
        let before = self.book_depths(token, &sels);
        self.set_depths(token, &sels, sub.depth);
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let (fmt, key) = (conn.format, conn.key);
        let mut fresh: Vec<NewlyMatched> = Vec::new();
        for sel in &sels {
            conn.subs.set_rate(sel, sub.max_rate);
            let subs = &mut conn.subs;
            match sel.clone() {
                Selector::Exact(t) => {
                    let since = sub.since.get(&*t);
                    fresh.extend(self.index.add_exact(&self.table, key, fmt, subs, t, since))
                }
                Selector::Prefix(p) => {
                    fresh.extend(
                        self.index
                            .add_prefix(&self.table, key, fmt, subs, p, &sub.since),
                    )
                }
            }
        }
        // Epochs of the exact topics: from the snapshot taken as the
        // connection joined, else (already receiving it) the table's.
        let mut epochs: Vec<(Arc<str>, Epoch)> = Vec::new();
        for sel in &sels {
            if let Selector::Exact(t) = sel {
                let joined = fresh.iter().find(|nm| nm.topic == *t).map(|nm| nm.snapshot);
                if let Some(snap) = joined.or_else(|| self.table.snapshot(t)) {
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
        let names: Vec<String> = sels.iter().map(Selector::text).collect();
        let ack =
            event::encode_subscribed(&mut self.fb, fmt, id.as_ref(), &names, &epochs, &recovered);
        conn.out.push(ack);
        let names = self.table.field_names();
        let enc = &mut EventWriter {
            fb: &mut self.fb,
            fmt,
            names,
        };
        push_owed(&mut conn.out, enc, &conn.subs, &fresh);
        self.restate_books(token, before);
        Ok(())
    }

    fn unsubscribe(&mut self, token: usize, list: &[String], id: Id) -> Result<(), CommandError> {
        let max_len = self.live.config.max_topic_len;
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
        let names: Vec<String> = sels.iter().map(Selector::text).collect();
        let ack = event::encode_topics(&mut self.fb, fmt, "unsubscribed", id.as_ref(), &names);
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
                Selector::Exact(t) => self.index.remove_exact(&self.table, key, fmt, subs, t),
                Selector::Prefix(p) => self.index.remove_prefix(&self.table, key, fmt, subs, p),
            }
        }
        let subs = &conn.subs;
        conn.backlog.subscriptions_changed(|t| subs.covers(t));
    }

    fn list_topics(&mut self, token: usize, prefix: &str, id: Id) -> Result<(), CommandError> {
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        let names = self.table.list(prefix, TOPICS_LIMIT);
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        let f = event::encode_topics(&mut self.fb, conn.format, "topics", id.as_ref(), &names);
        conn.out.push(f);
        Ok(())
    }

    fn pong(&mut self, token: usize, id: Id) -> Result<(), CommandError> {
        if let Some(conn) = self.conns.get_mut(token) {
            let f = event::encode_pong(&mut self.fb, conn.format, id.as_ref(), now_ns());
            conn.out.push(f);
        }
        Ok(())
    }
}

/// Queues what a connection that just started to receive topics is owed:
/// for each, its snapshot, or the updates it missed when it resumed and the
/// history still held them.
pub(super) fn push_owed(
    out: &mut Outbound,
    enc: &mut EventWriter<'_>,
    subs: &Subscriptions,
    owed: &[NewlyMatched],
) {
    let (fmt, names) = (enc.fmt, enc.names);
    for nm in owed {
        let fb = &mut *enc.fb;
        let s = &nm.snapshot;
        if let Some(view) = &nm.book {
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
                out.push(event::encode_price(fb, fmt, &snapshot, names));
            }
        }
    }
}

/// A command's `id`, echoed in its reply.
type Id = Option<serde_json::Value>;

/// Parses a command's topics and patterns (duplicates dropped, in linear
/// time); the first bad one refuses the whole command with `bad_topic`.
pub(super) fn parse_selectors(
    list: &[String],
    max_len: usize,
    id: &Id,
) -> Result<Vec<Selector>, CommandError> {
    let mut seen = HashSet::with_capacity(list.len());
    let mut out: Vec<Selector> = Vec::with_capacity(list.len());
    for s in list {
        let sel = Selector::parse(s, max_len).map_err(|e| CommandError {
            id: id.clone(),
            code: ErrorCode::BadTopic,
            message: e.to_string(),
        })?;
        if seen.insert(sel.clone()) {
            out.push(sel);
        }
    }
    Ok(out)
}
