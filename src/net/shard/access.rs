//! What a connection's token allows, enforced where the connection acts:
//! the command rate, the subscribe and publish scopes, `auth` (a fresh
//! token on the open connection), and expiry (on the heartbeat sweep).

use super::Shard;
use crate::access::Scope;
use crate::engine::selector::Selector;
use crate::metrics::CloseReason;
use crate::net::conn::Verdict;
use crate::net::http::auth::grant_of;
use crate::net::http::Role;
use crate::wire::command::CommandError;
use crate::wire::event::{self, ErrorCode};
use crate::wire::publish::{Item, PublisherEvent};
use serde_json::Value;
use std::time::Instant;

type Id = Option<Value>;

impl Shard {
    /// Takes one command from the connection's rate bucket. Over the rate
    /// the command is answered `rate_limited`; a connection that goes on
    /// sending while refused (more than two seconds' worth in a row) is
    /// closed with 1008.
    pub(super) fn rate_limit(&mut self, token: usize, id: &Id, now: Instant) -> Option<Verdict> {
        let rate = self.ctx.live.config.max_commands_per_sec;
        let conn = self.conns.get_mut(token)?;
        if conn.commands.take(rate, now) {
            return None;
        }
        if conn.commands.refused as f64 > 2.0 * rate.max(1.0) {
            if let Ok(peer) = conn.io.socket().peer_addr() {
                self.ctx.shared.floods.remember(peer.ip(), now);
            }
            return Some(Verdict::policy(
                "command rate limit exceeded",
                CloseReason::Policy,
            ));
        }
        let message = format!("more than {rate} commands per second; slow down");
        let code = ErrorCode::RateLimited;
        let id = id.clone();
        self.send_error(token, CommandError { id, code, message });
        Some(Verdict::Continue)
    }

    /// The connection's own limit on subscriptions (its token's `max_subs`,
    /// within the server's), and `forbidden` when a selector reaches outside
    /// its token's `topics`: the whole subscribe is refused.
    pub(super) fn subscribe_allowed(
        &self,
        token: usize,
        sels: &[Selector],
        id: &Id,
    ) -> Result<usize, CommandError> {
        let max = self.ctx.live.config.max_subscriptions;
        let Some(grant) = self.conns.get(token).and_then(|c| c.access.as_ref()) else {
            return Ok(max);
        };
        let grant = &grant.grant;
        if let Some(scope) = &grant.topics {
            let outside: Vec<String> = sels
                .iter()
                .filter(|s| !scope.allows(s))
                .map(Selector::text)
                .collect();
            if !outside.is_empty() {
                return Err(CommandError {
                    id: id.clone(),
                    code: ErrorCode::Forbidden,
                    message: format!(
                        "your token does not allow {}; nothing was subscribed",
                        outside.join(", ")
                    ),
                });
            }
        }
        Ok(grant.max_subs.map_or(max, |m| m.min(max)))
    }

    /// A publish frame with a topic outside the publisher's `publish` scope
    /// is refused whole (`forbidden`, with the indexes) and counted.
    pub(super) fn publish_forbidden(&mut self, token: usize, items: &[Item]) -> bool {
        let Some(scope) = self
            .conns
            .get(token)
            .and_then(|c| c.access.as_ref())
            .and_then(|a| a.grant.publish.as_ref())
        else {
            return false;
        };
        let outside: Vec<u32> = (0..items.len())
            .filter(|&i| !scope.allows_topic(items[i].topic()))
            .map(|i| i as u32)
            .collect();
        if outside.is_empty() {
            return false;
        }
        let first = items[outside[0] as usize].topic().to_string();
        let ev = PublisherEvent::Error {
            code: crate::wire::publish::PublishCode::Forbidden,
            message: format!(
                "your token does not allow publishing {first:?} (update {}{}); \
                 nothing in this frame was published",
                outside[0],
                match outside.len() {
                    1 => String::new(),
                    n => format!(" and {} more, listed in indexes", n - 1),
                }
            ),
            refused: items.len() as u64,
            indexes: outside,
        };
        self.metrics()
            .publish_refused
            .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.send_publisher_event(token, &ev);
        true
    }

    /// `auth`: a fresh token for the open connection. A subscriber token
    /// (static or JWT) replaces the connection's grant and expiry;
    /// subscriptions its scope no longer allows are dropped and listed.
    pub(super) fn auth(
        &mut self,
        token: usize,
        presented: &str,
        id: Id,
    ) -> Result<(), CommandError> {
        let refuse = |message: String| CommandError {
            id: id.clone(),
            code: ErrorCode::Unauthorized,
            message,
        };
        let statics = &self.ctx.live.config.subscriber_tokens;
        let jwt = self.ctx.live.jwt.as_deref();
        let pass = grant_of(presented, statics, jwt, Role::Subscriber)
            .map_err(|why| refuse(why.unwrap_or("not a subscriber token of this server".into())))?;
        let Some(conn) = self.conns.get_mut(token) else {
            return Ok(());
        };
        if conn.role != Role::Subscriber {
            return Err(refuse("auth is a subscriber command".into()));
        }
        conn.admit(pass);
        let access = conn.access.as_ref();
        let scope: Option<&Scope> = access.and_then(|a| a.grant.topics.as_ref());
        let mut dropped: Vec<Selector> = Vec::new();
        if let Some(scope) = scope {
            let exact = conn.subs.exact.iter().map(|t| Selector::Exact(t.clone()));
            let prefixes = conn
                .subs
                .prefixes()
                .iter()
                .map(|p| Selector::Prefix(p.clone()));
            dropped = exact.chain(prefixes).filter(|s| !scope.allows(s)).collect();
        }
        let exp = access.and_then(|a| a.grant.exp);
        let names: Vec<String> = dropped.iter().map(Selector::text).collect();
        let before = self.book_depths(token, &dropped);
        self.withdraw(token, &dropped);
        if let Some(conn) = self.conns.get_mut(token) {
            let f = event::encode_authenticated(
                &mut self.delivery.fb,
                conn.format,
                id.as_ref(),
                exp,
                &names,
            );
            conn.out.push(f);
        }
        // A book still received through another subscription, at another depth.
        self.restate_books(token, before);
        Ok(())
    }

    /// Tokens past their `exp`: the connection is sent `expired` and, after
    /// `expiry_grace`, closed with 1008 unless it presented a fresh token.
    /// Runs on the heartbeat sweep (at least once a second).
    pub(super) fn expire_tokens(&mut self, now: Instant) {
        let grace = self.ctx.live.config.expiry_grace;
        let (mut ended, mut told) = (Vec::new(), Vec::new());
        for (token, conn) in self.conns.iter_mut() {
            if !conn.is_open() {
                continue;
            }
            let Some(a) = conn.access.as_mut() else {
                continue;
            };
            match (a.expires_at, a.close_at) {
                (_, Some(at)) if at <= now => ended.push(token),
                (Some(exp), None) if exp <= now => {
                    a.close_at = Some(now + grace);
                    if conn.role == Role::Subscriber {
                        let f =
                            event::encode_expired(&mut self.delivery.fb, conn.format, a.grant.exp);
                        conn.out.push(f);
                    }
                    told.push(token);
                }
                _ => {}
            }
        }
        for token in told {
            self.mark_dirty(token);
        }
        for token in ended {
            let verdict = Verdict::policy("token expired", CloseReason::Policy);
            self.settle(token, verdict);
        }
    }
}
