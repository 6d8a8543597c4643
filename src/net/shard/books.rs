//! Order-book subscriptions on a shard: the depth a subscriber asked for
//! (`depth` on `subscribe`), its `book` snapshot cut to that depth, and a
//! fresh snapshot when a subscribe or unsubscribe changes the depth of a
//! book the connection already receives (its copy is of the old depth).

use super::Shard;
use crate::engine::selector::Selector;
use crate::model::book::{class_of, is_book, DEFAULT_DEPTH, DEPTHS};
use crate::model::event::BookMsg;
use crate::model::event::PriceKind;
use crate::model::format::Format;
use crate::net::outbound::Outbound;
use crate::net::subscriptions::Subscriptions;
use crate::wire::event::book::encode_book;
use crate::wire::frame::FrameBuf;
use std::collections::HashSet;
use std::sync::Arc;

/// Book topics a change of these subscriptions may give another depth,
/// with the depth class each has now: those the connection receives.
pub(super) type Depths = Vec<(Arc<str>, usize)>;

impl Shard {
    /// The book topics the connection receives that `sels` cover, with
    /// their depth class now (before the subscriptions change).
    pub(super) fn book_depths(&self, token: usize, sels: &[Selector]) -> Depths {
        let Some(conn) = self.conns.get(token) else {
            return Vec::new();
        };
        // Linear in the books named: a set, not a search of `out` per book.
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for sel in sels {
            let names = match sel {
                Selector::Exact(t) if is_book(t) => vec![t.clone()],
                Selector::Exact(_) => continue,
                Selector::Prefix(p) => self.delivery.index.books_under(p, conn.key),
            };
            for t in names {
                if conn.subs.covers(&t) && seen.insert(t.clone()) {
                    let class = conn.subs.depth_class_for(&t);
                    out.push((t, class));
                }
            }
        }
        out
    }

    /// Records the depth `depth` (None: the default) of these subscriptions
    /// and makes the router encode that depth class from now on (before any
    /// join, so every update numbered after it has a frame for it).
    pub(super) fn set_depths(&mut self, token: usize, sels: &[Selector], depth: Option<usize>) {
        let class = class_of(depth.unwrap_or(DEFAULT_DEPTH)).unwrap_or(0);
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let mut books = false;
        for sel in sels {
            conn.subs.set_depth(sel, class);
            books |= match sel {
                Selector::Exact(t) => is_book(t),
                Selector::Prefix(_) => true,
            };
        }
        if books {
            self.ctx.table.want_book_class(class);
        }
    }

    /// After the subscriptions changed: every book of `before` the
    /// connection still receives at another depth gets a fresh `book`
    /// snapshot at the new depth, and the updates already numbered into it
    /// are skipped (the member skips through its `seq`).
    pub(super) fn restate_books(&mut self, token: usize, before: Depths) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        for (topic, old) in before {
            let class = conn.subs.depth_class_for(&topic);
            if !conn.subs.covers(&topic) || class == old {
                continue;
            }
            self.ctx.table.want_book_class(class);
            let Some((_, joined)) =
                self.ctx
                    .table
                    .join_exact(&topic, self.ctx.id, conn.format, None)
            else {
                continue;
            };
            let Some(view) = joined.book.as_deref() else {
                continue;
            };
            let s = &joined.snapshot;
            self.delivery
                .index
                .restart_member(&topic, conn.key, s.seq, joined.generation);
            // What it held back of the topic was for the old window.
            conn.backlog.forget(&topic);
            let zip = deflate_at(conn, &self.ctx.live.config);
            let (out, fb, fmt) = (&mut conn.out, &mut self.delivery.fb, conn.format);
            push_book_snapshot((out, zip), fb, fmt, &conn.subs, &topic, s, view);
        }
    }
}

/// Where a connection's own large frames start being compressed: None
/// unless it negotiated permessage-deflate, and for a batch session, which
/// compresses whole batches instead.
pub(super) fn deflate_at(
    conn: &crate::net::conn::Conn,
    config: &crate::config::Config,
) -> Option<usize> {
    conn.shared_deflate().then_some(config.deflate_min_bytes)
}

/// Queues a book topic's `book` snapshot at the depth the connection
/// receives it at (compressed from `deflate_at` bytes, if set).
pub(super) fn push_book_snapshot(
    (out, deflate_at): (&mut Outbound, Option<usize>),
    fb: &mut FrameBuf,
    fmt: Format,
    subs: &Subscriptions,
    topic: &str,
    snapshot: &crate::engine::table::Snapshot,
    view: &crate::engine::table::BookView,
) {
    let depth = DEPTHS[subs.depth_class_for(topic)];
    let (bids, asks) = view.cut(depth);
    let msg = BookMsg {
        kind: PriceKind::Snapshot,
        topic,
        seq: snapshot.seq,
        ts: snapshot.ts,
        depth,
        bids,
        asks,
        checksum: view.checksum(),
        epoch: Some(snapshot.epoch.as_str()),
        stale: snapshot.stale,
        conflated: 1,
    };
    out.push_event(encode_book(fb, fmt, &msg), deflate_at);
}
