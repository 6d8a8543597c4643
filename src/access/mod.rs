//! What a connection may do: the grant its token carries. A static token
//! (or an open server) grants everything; a JWT grants what its claims say
//! (`jwt`). The shard checks a grant where the connection acts: at
//! subscribe (`topics`, `max_subs`), at delivery (`max_rate`), at publish
//! (`publish`), and on its timers (`exp`).

pub(crate) mod jwt;

use crate::engine::selector::Selector;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Patterns in the subscription syntax (`FX.*`, `BTC-USD`, `*` for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(Vec<Selector>);

impl Scope {
    /// Parses a claim's patterns; the error names the first bad one.
    pub fn parse(patterns: &[String], max_len: usize) -> Result<Scope, String> {
        patterns
            .iter()
            .map(|p| Selector::parse(p, max_len).map_err(|e| format!("pattern {p:?}: {e}")))
            .collect::<Result<_, _>>()
            .map(Scope)
    }

    /// Does the scope allow everything `sel` can match? A pattern is allowed
    /// only inside a pattern of the scope: `FX.EUR*` inside `FX.*`, not
    /// `FX.*` inside `FX.EUR*` (it would match `FX.GBPUSD` too).
    pub fn allows(&self, sel: &Selector) -> bool {
        self.0.iter().any(|s| match (s, sel) {
            (Selector::Prefix(p), Selector::Exact(t)) => t.starts_with(&**p),
            (Selector::Prefix(p), Selector::Prefix(q)) => q.starts_with(&**p),
            (Selector::Exact(a), Selector::Exact(t)) => a == t,
            (Selector::Exact(_), Selector::Prefix(_)) => false,
        })
    }

    /// The patterns, comma-separated (topics cannot hold a comma).
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(Selector::text)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Does the scope allow one topic?
    pub fn allows_topic(&self, topic: &str) -> bool {
        self.0.iter().any(|s| match s {
            Selector::Prefix(p) => topic.starts_with(&**p),
            Selector::Exact(t) => **t == *topic,
        })
    }
}

/// What a connection's token lets it do.
/// How a connection was let in.
#[derive(Debug, PartialEq)]
pub(crate) enum Pass {
    /// No token: subscribing is open.
    Open,
    /// A static token, by its fingerprint (see `fingerprint`): enough to
    /// tell at a reload whether the token is still configured, without
    /// keeping the token itself.
    Static(u64),
    /// A JWT, with what it grants.
    Jwt(Box<Grant>),
}

/// A static token's fingerprint: a hash keyed at random once per process,
/// never 0 (the connections' "no static token").
pub(crate) fn fingerprint(token: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(token) | 1
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Grant {
    /// Who it is (a JWT's `sub`), for logs and operators.
    pub sub: Option<String>,
    /// Patterns it may subscribe to; None: all.
    pub topics: Option<Scope>,
    /// Topics it may publish; None: all.
    pub publish: Option<Scope>,
    /// Most subscriptions, below the server's own limit.
    pub max_subs: Option<usize>,
    /// Most events per second per topic, below the server's own cap.
    pub max_rate: Option<f64>,
    /// The connection's byte budget, below the server's own.
    pub max_bytes_per_sec: Option<u64>,
    /// When the token stops being valid, in seconds since the Unix epoch.
    pub exp: Option<u64>,
}

impl Grant {
    /// When the token expires, as an instant of this process's clock.
    pub fn expires_at(&self) -> Option<Instant> {
        let exp = self.exp?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let left = (exp as f64 - now).max(0.0);
        Some(Instant::now() + Duration::from_secs_f64(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(p: &[&str]) -> Scope {
        Scope::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 64).unwrap()
    }
    fn sel(s: &str) -> Selector {
        Selector::parse(s, 64).unwrap()
    }

    #[test]
    fn a_pattern_is_allowed_only_inside_the_scope() {
        let s = scope(&["FX.*", "BTC-USD"]);
        assert!(s.allows(&sel("FX.EURUSD")));
        assert!(s.allows(&sel("FX.*")));
        assert!(s.allows(&sel("FX.EUR*")));
        assert!(s.allows(&sel("BTC-USD")));
        assert!(!s.allows(&sel("BTC-USDT")));
        assert!(!s.allows(&sel("BTC-*")), "wider than the exact topic");
        assert!(!s.allows(&sel("F*")), "wider than FX.*");
        assert!(!s.allows(&sel("*")));
        assert!(scope(&["*"]).allows(&sel("*")));
        assert!(s.allows_topic("FX.GBPUSD") && !s.allows_topic("EQ.AAPL"));
        assert!(Scope::parse(&["F*X".into()], 64).is_err());
    }
}
