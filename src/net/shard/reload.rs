//! Reloaded settings reach a shard as a message (`ShardMsg::Reload`). New
//! connections take them whole; open ones keep their subscriptions and
//! queues, get the new queue limits and command rate, and are closed with
//! 1008 only when the static token they came in with is gone (or, for
//! open-access subscribers, when a token is now required).

use super::Shard;
use crate::access::fingerprint;
use crate::metrics::CloseReason;
use crate::net::backlog::BacklogLimits;
use crate::net::conn::Verdict;
use crate::net::http::Role;
use crate::net::live::Live;
use std::sync::Arc;

impl Shard {
    /// Takes the settings of a reload. One pass over the shard's
    /// connections: a reload is rare, and the pass compares one integer
    /// per connection.
    pub(super) fn reload(&mut self, live: Arc<Live>) {
        let cfg = &live.config;
        self.delivery.limits = BacklogLimits::new(cfg);
        let prints =
            |tokens: &[String]| -> Vec<u64> { tokens.iter().map(|t| fingerprint(t)).collect() };
        let (subscribers, publishers) = (
            prints(&cfg.subscriber_tokens),
            prints(&cfg.publisher_tokens),
        );
        let token_required = !cfg.subscriber_tokens.is_empty() || live.jwt.is_some();
        let mut ended = Vec::new();
        for (token, conn) in self.conns.iter() {
            if !conn.is_open() {
                continue;
            }
            let why = match (conn.static_token, conn.role) {
                (0, Role::Subscriber) if conn.access.is_none() && token_required => {
                    Some("a token is now required")
                }
                (0, _) => None,
                (print, Role::Subscriber) if !subscribers.contains(&print) => Some("token revoked"),
                (print, Role::Publisher) if !publishers.contains(&print) => Some("token revoked"),
                _ => None,
            };
            if let Some(why) = why {
                ended.push((token, why));
            }
        }
        if !ended.is_empty() {
            log::info!(
                "shard {}: settings generation {}: closing {} connections whose token is no longer accepted",
                self.ctx.id,
                live.generation,
                ended.len()
            );
        }
        let rate_changed = self.ctx.live.config.max_rate != live.config.max_rate;
        self.ctx.live = live;
        if rate_changed {
            // Every connection's pacing may change: what the groups hold
            // goes out first, then each connection's pacing is computed anew.
            self.release_all_groups();
            let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
            for token in tokens {
                self.repace(token);
            }
        }
        for (token, why) in ended {
            self.settle(token, Verdict::policy(why, CloseReason::Policy));
        }
    }
}
