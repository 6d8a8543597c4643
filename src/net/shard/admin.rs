//! The operator endpoints (`/admin/…`): the shard that reads a request asks
//! every shard over its channel (itself directly) and parks the HTTP
//! connection until the answers are in. One pass over a shard's
//! connections or index per question: an operator's request, not the hot
//! path; no shard waits on another (the reply channel has room for every
//! answer).

use super::state::AdminWait;
use super::{Shard, ShardMsg};
use crate::admin::{AdminQuery, AdminReply, ConnInfo};
use crate::metrics::CloseReason;
use crate::model::format::Format;
use crate::net::conn::Verdict;
use crate::net::http::status::Status;
use crate::net::http::{self, AdminRequest, Role};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

/// Subscriptions listed per connection.
const LISTED_SUBSCRIPTIONS: usize = 100;

impl Shard {
    pub(super) fn answer_admin(&mut self, q: AdminQuery, reply: Sender<AdminReply>) {
        let answer = match q {
            AdminQuery::Connections => AdminReply::Connections(self.connection_list()),
            AdminQuery::Close { id } => {
                let found = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.is_open() && global_id(self.ctx.id, c.id) == id)
                    .map(|(t, _)| t);
                if let Some(token) = found {
                    let verdict = Verdict::policy("closed by an operator", CloseReason::Policy);
                    self.settle(token, verdict);
                }
                AdminReply::Closed(found.is_some())
            }
            AdminQuery::Topics => AdminReply::Topics(self.delivery.index.subscriber_counts()),
        };
        let _ = reply.try_send(answer);
    }

    fn connection_list(&mut self) -> Vec<ConnInfo> {
        let (conflate_at, shard) = (self.delivery.limits.conflate_at, self.ctx.id);
        let mut out = Vec::new();
        for (_, c) in self.conns.iter_mut() {
            if !c.is_open() {
                continue;
            }
            let exact = c.subs.exact.iter().map(|t| t.to_string());
            let patterns = c.subs.prefixes().iter().map(|p| format!("{p}*"));
            out.push(ConnInfo {
                id: global_id(shard, c.id),
                peer: c.io.socket().peer_addr().ok().map(|a| a.to_string()),
                sub: c.access.as_ref().and_then(|a| a.grant.sub.clone()),
                role: match c.role {
                    Role::Subscriber => "subscriber",
                    Role::Publisher => "publisher",
                },
                format: match c.format {
                    Format::Json => "json",
                    Format::MsgPack => "msgpack",
                },
                subscriptions: exact.chain(patterns).take(LISTED_SUBSCRIPTIONS).collect(),
                subscription_count: c.subs.len(),
                queued_bytes: c.reported_pending,
                conflating: c.out.pending() >= conflate_at || c.backlog.held_bytes() > 0,
                connected_since: c
                    .connected_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                deflate: match (c.deflate, c.out.own_context()) {
                    (false, _) => None,
                    (true, false) => Some("shared"),
                    (true, true) => Some("per_connection"),
                },
                batch: c.out.batching(),
                max_bytes_per_sec: c.backlog.budget(),
            });
        }
        out
    }
}

/// A connection's id across the server: the shard in the top 16 bits.
fn global_id(shard: usize, conn_id: u64) -> u64 {
    ((shard as u64) << 48) | (conn_id & ((1 << 48) - 1))
}

/// How long an operator request waits for the shards' answers.
const ADMIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long `POST /admin/reload` waits for the reload (which reads files).
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Shard {
    /// An operator request came in on `token`: every shard (this one
    /// directly) is asked; the answer goes out once all have replied, or
    /// after `ADMIN_WAIT` with what came.
    pub(super) fn start_admin(&mut self, token: usize, request: AdminRequest) -> Verdict {
        let query = match request {
            AdminRequest::Connections => AdminQuery::Connections,
            AdminRequest::Topics => AdminQuery::Topics,
            AdminRequest::Close(id) => AdminQuery::Close { id },
            AdminRequest::Reload => return self.start_reload(token),
        };
        let (tx, rx) = crossbeam_channel::bounded(self.acceptor.peers.len());
        let mut expected = 0;
        for i in 0..self.acceptor.peers.len() {
            if i == self.ctx.id {
                self.answer_admin(query, tx.clone());
                expected += 1;
                continue;
            }
            if self.acceptor.peers[i]
                .try_send(ShardMsg::Admin(query, tx.clone()))
                .is_ok()
            {
                expected += 1;
            }
        }
        self.park_admin(token, request, rx, expected, ADMIN_WAIT);
        Verdict::Continue
    }

    /// `POST /admin/reload`: the reload runs on a thread of its own (reading
    /// a file and handing settings to every shard may block, which a shard
    /// must not); the request waits for its answer.
    fn start_reload(&mut self, token: usize) -> Verdict {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = self.ctx.shared.clone();
        let run = move || {
            let _ = tx.send(AdminReply::Reloaded((shared.reload)(&shared)));
        };
        if let Err(e) = std::thread::Builder::new()
            .name("tickcast-reload".into())
            .spawn(run)
        {
            log::error!("cannot start a reload thread: {e}");
        }
        self.park_admin(token, AdminRequest::Reload, rx, 1, RELOAD_WAIT);
        Verdict::Continue
    }

    fn park_admin(
        &mut self,
        token: usize,
        request: AdminRequest,
        rx: crossbeam_channel::Receiver<AdminReply>,
        expected: usize,
        wait: std::time::Duration,
    ) {
        let Some(conn_id) = self.conns.get(token).map(|c| c.id) else {
            return;
        };
        self.pending.admin.push(AdminWait {
            token,
            conn_id,
            request,
            rx,
            expected,
            replies: Vec::new(),
            deadline: Instant::now() + wait,
        });
    }

    /// Answers the operator requests whose shards have all replied (or
    /// whose wait is over).
    pub(super) fn poll_admin(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.admin.len() {
            let w = &mut self.pending.admin[i];
            while let Ok(r) = w.rx.try_recv() {
                w.replies.push(r);
            }
            if w.replies.len() < w.expected && now < w.deadline {
                i += 1;
                continue;
            }
            let w = self.pending.admin.swap_remove(i);
            let shards = self.acceptor.peers.len();
            let response = self.admin_response(w.request, w.replies, shards);
            let Some(conn) = self.conns.same(w.token, w.conn_id) else {
                continue;
            };
            conn.out.push(&response);
            self.settle(w.token, Verdict::Finish(CloseReason::Http));
        }
    }

    fn admin_response(
        &self,
        request: AdminRequest,
        replies: Vec<AdminReply>,
        shards: usize,
    ) -> Vec<u8> {
        let answered = replies.len();
        let json = |v: serde_json::Value| {
            http::response_typed(Status::Ok, "application/json", &format!("{v}\n"), "")
        };
        match request {
            AdminRequest::Connections => {
                let mut all: Vec<ConnInfo> = Vec::new();
                for r in replies {
                    if let AdminReply::Connections(list) = r {
                        all.extend(list);
                    }
                }
                all.sort_by_key(|c| c.id);
                json(serde_json::json!({
                    "connections": all,
                    "shards": shards,
                    "shards_answered": answered,
                }))
            }
            AdminRequest::Topics => {
                let mut subscribers: HashMap<Arc<str>, u64> = HashMap::new();
                for r in replies {
                    if let AdminReply::Topics(list) = r {
                        for (t, n) in list {
                            *subscribers.entry(t).or_default() += n as u64;
                        }
                    }
                }
                json(serde_json::json!({
                    "topics": self.ctx.table.admin_list(&subscribers),
                    "shards": shards,
                    "shards_answered": answered,
                }))
            }
            AdminRequest::Reload => match replies.into_iter().next() {
                Some(AdminReply::Reloaded(outcome)) => reload_answer(outcome),
                _ => {
                    let why = "the reload did not finish in time; see the log\n";
                    http::response(Status::ServiceUnavailable, why)
                }
            },
            AdminRequest::Close(id) => {
                if replies
                    .iter()
                    .any(|r| matches!(r, AdminReply::Closed(true)))
                {
                    json(serde_json::json!({ "closed": id }))
                } else {
                    let why = format!("no open connection with id {id}\n");
                    http::response(Status::NotFound, &why)
                }
            }
        }
    }
}

/// The HTTP answer to `POST /admin/reload`: 200 with what was applied, 404
/// when the server has no configuration source, 400 when the new settings
/// were refused (the running ones are kept).
fn reload_answer(outcome: crate::error::Result<crate::config::source::Reloaded>) -> Vec<u8> {
    use crate::error::{ConfigError, Error};
    let (status, body) = match outcome {
        Ok(report) => (Status::Ok, serde_json::json!({ "reloaded": report })),
        Err(Error::InvalidConfig(ConfigError::NoSource)) => (
            Status::NotFound,
            serde_json::json!({ "error": ConfigError::NoSource.to_string() }),
        ),
        Err(e) => (
            Status::BadRequest,
            serde_json::json!({
                "error": format!("reload refused, the running configuration is kept: {e}")
            }),
        ),
    };
    http::response_typed(status, "application/json", &format!("{body}\n"), "")
}
