//! Cluster mode: a subscribe runs once this node follows (in Redis) every
//! topic and pattern it names, so its snapshots, and a resume's missed
//! updates, come from the cluster's value and history. Until then that
//! connection is parked (nothing more of it is read); the shard's other
//! connections go on. The link answers within one round trip or two to
//! Redis; when Redis cannot be reached it answers at once, and the
//! subscriber gets what the node holds, then the rest when the link is
//! back.

use super::commands::parse_selectors;
use super::Shard;
use crate::cluster::FollowRequest;
use crate::engine::selector::Selector;
use crate::net::conn::Verdict;
use crate::wire::command::{Command, Op};
use crossbeam_channel::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a subscribe waits for the link at most; then it runs with
/// what the node holds.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

/// A subscribe waiting for its topics to be followed.
pub(crate) struct FollowWait {
    token: usize,
    conn_id: u64,
    cmd: Command,
    done: Receiver<()>,
    deadline: Instant,
}

impl Shard {
    /// Runs `cmd` at once unless it is a subscribe (in cluster mode) that
    /// names something not followed yet: then asks the link to follow it
    /// and parks the connection until it has.
    pub(super) fn follow_then_run(&mut self, token: usize, cmd: Command) -> Verdict {
        let Some(link) = self.ctx.shared.cluster.clone() else {
            return self.run_command(token, cmd);
        };
        let Op::Subscribe(sub) = &cmd.op else {
            return self.run_command(token, cmd);
        };
        let max_len = self.ctx.live.config.max_topic_len;
        let mut topics: Vec<Arc<str>> = Vec::new();
        let mut prefixes: Vec<Arc<str>> = Vec::new();
        // A bad name is refused by the subscribe itself, with its error.
        for sel in parse_selectors(&sub.topics, max_len, &None).unwrap_or_default() {
            match sel {
                Selector::Exact(t) => topics.push(t),
                Selector::Prefix(p) => prefixes.push(p),
            }
        }
        topics.extend(sub.since.keys().map(|t| Arc::from(t.as_str())));
        let following = link.following.read();
        topics.retain(|t| !following.covers_topic(t));
        prefixes.retain(|p| !following.covers_prefix(p));
        if topics.is_empty() && prefixes.is_empty() {
            // Joined under the read lock: the link's sweep, which drops a
            // topic nobody here wants under the write lock, cannot drop
            // these between this check and the join.
            let verdict = self.run_command(token, cmd);
            drop(following);
            return verdict;
        }
        drop(following);
        let (tx, done) = crossbeam_channel::bounded(1);
        let request = FollowRequest {
            topics,
            prefixes,
            done: tx,
        };
        let Some(conn) = self.conns.get_mut(token) else {
            return Verdict::Continue;
        };
        if link.requests.try_send(request).is_err() {
            // The link is far behind: serve what the node holds.
            return self.run_command(token, cmd);
        }
        conn.parked = true;
        self.pending.follows.push(FollowWait {
            token,
            conn_id: conn.id,
            cmd,
            done,
            deadline: Instant::now() + FOLLOW_WAIT,
        });
        Verdict::Continue
    }

    /// Runs the parked subscribes whose topics are followed now (or whose
    /// wait is over), and reads their connections again.
    pub(super) fn poll_follows(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.follows.len() {
            let w = &self.pending.follows[i];
            let answered = w.done.try_recv().is_ok();
            if !answered && now < w.deadline {
                i += 1;
                continue;
            }
            let w = self.pending.follows.swap_remove(i);
            let Some(conn) = self.conns.same(w.token, w.conn_id) else {
                continue;
            };
            conn.parked = false;
            let verdict = if answered {
                // Checked again: followed now, unless dropped meanwhile.
                self.follow_then_run(w.token, w.cmd)
            } else {
                log::warn!("shard {}: the cluster link did not answer in time; subscribing with the values held here", self.ctx.id);
                self.run_command(w.token, w.cmd)
            };
            self.settle(w.token, verdict);
            self.mark_dirty(w.token);
            self.pending.reread.push(w.token);
        }
    }
}
