//! A connection's subscriptions, as the client named them: kept per
//! connection so an unsubscribe or a close knows what to withdraw from the
//! shard's index.

use crate::engine::selector::Selector;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A connection's subscriptions, as the client named them.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// Exact topics, sorted: a small sorted vector costs a third of a hash
    /// set's memory, and idle connections are most of a server's memory.
    pub exact: ExactSet,
    /// Prefix patterns (`FX.` for `FX.*`), sorted so `covers` can look a
    /// topic's prefixes up instead of testing every pattern.
    prefixes: Vec<Arc<str>>,
    /// The `max_rate` each subscription asked for, when any did; boxed so
    /// connections without one pay 8 bytes.
    rates: Option<Box<PerSelector<f64>>>,
    /// The book depth class (`book::DEPTHS`) of each subscription that
    /// asked for other than the default, likewise boxed.
    depths: Option<Box<PerSelector<u8>>>,
}

/// A value per subscription, looked up by name in O(1): a command setting
/// it for a thousand topics costs a thousand steps, not a million.
#[derive(Default)]
struct PerSelector<T> {
    exact: HashMap<Arc<str>, T>,
    prefix: HashMap<Arc<str>, T>,
}

impl<T: Copy + Default> PerSelector<T> {
    fn side(&mut self, sel: &Selector) -> (&mut HashMap<Arc<str>, T>, Arc<str>) {
        match sel {
            Selector::Exact(t) => (&mut self.exact, t.clone()),
            Selector::Prefix(p) => (&mut self.prefix, p.clone()),
        }
    }

    fn get(&self, sel: &Selector) -> Option<T> {
        match sel {
            Selector::Exact(t) => self.exact.get(&**t).copied(),
            Selector::Prefix(p) => self.prefix.get(&**p).copied(),
        }
    }

    /// Sets (Some) or clears (None) the value of `sel`, in an optional
    /// boxed map that exists only while it holds something.
    fn set(this: &mut Option<Box<Self>>, sel: &Selector, value: Option<T>) {
        match value {
            Some(v) => {
                let (map, key) = this.get_or_insert_with(Default::default).side(sel);
                map.insert(key, v);
            }
            None => {
                if let Some(m) = this.as_mut() {
                    let (map, key) = m.side(sel);
                    map.remove(&*key);
                    if m.exact.is_empty() && m.prefix.is_empty() {
                        *this = None;
                    }
                }
            }
        }
    }
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    pub fn contains(&self, sel: &Selector) -> bool {
        match sel {
            Selector::Exact(t) => self.exact.contains(t),
            Selector::Prefix(p) => self.has_prefix(p),
        }
    }

    /// The prefix patterns, sorted.
    pub fn prefixes(&self) -> &[Arc<str>] {
        &self.prefixes
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.prefixes
            .binary_search_by(|p| (**p).cmp(prefix))
            .is_ok()
    }

    /// Adds a prefix pattern; false if it was there already.
    pub fn add_prefix(&mut self, prefix: Arc<str>) -> bool {
        match self.prefixes.binary_search_by(|p| (**p).cmp(&*prefix)) {
            Ok(_) => false,
            Err(at) => {
                self.prefixes.insert(at, prefix);
                true
            }
        }
    }

    /// Removes a prefix pattern; false if it was not there.
    pub fn remove_prefix(&mut self, prefix: &str) -> bool {
        match self.prefixes.binary_search_by(|p| (**p).cmp(prefix)) {
            Ok(at) => {
                self.prefixes.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Records the `max_rate` a subscription asked for (None: no rate of its own).
    pub fn set_rate(&mut self, sel: &Selector, rate: Option<f64>) {
        PerSelector::set(&mut self.rates, sel, rate);
    }

    /// Records the book depth class a subscription asked for (0: the default).
    pub fn set_depth(&mut self, sel: &Selector, class: usize) {
        PerSelector::set(&mut self.depths, sel, (class > 0).then_some(class as u8));
    }

    /// The depth class a book topic is sent at: its exact subscription's,
    /// else its longest covering pattern's (0 when none asked for another).
    ///
    /// No allocation; a binary search, a pass over the patterns and a
    /// lookup, only for connections that asked for a depth (the shard keeps
    /// the result in the index member, so it runs once per member).
    pub fn depth_class_for(&self, topic: &str) -> usize {
        let Some(depths) = &self.depths else {
            return 0;
        };
        if self.exact.contains(topic) {
            return depths.exact.get(topic).map_or(0, |c| *c as usize);
        }
        let longest = self
            .prefixes
            .iter()
            .filter(|p| topic.starts_with(&***p))
            .max_by_key(|p| p.len());
        longest.map_or(0, |p| depths.prefix.get(&**p).map_or(0, |c| *c as usize))
    }

    /// The rate every subscription asked for, when they all asked the same
    /// (`Some(None)`: none asked one); None when they differ. O(subscriptions):
    /// run when they change, not per update.
    pub fn asked_rate(&self) -> Option<Option<f64>> {
        let Some(rates) = &self.rates else {
            return Some(None);
        };
        let exact = self.exact.iter().map(|t| rates.exact.get(&**t).copied());
        let prefixes = self
            .prefixes
            .iter()
            .map(|p| rates.prefix.get(&**p).copied());
        let mut all = exact.chain(prefixes);
        let first = all.next().unwrap_or(None);
        all.all(|r| r == first).then_some(first)
    }

    /// The interval between events of `topic`: the least restrictive of the
    /// subscriptions that cover it, each at the rate it asked for capped by
    /// the server's `max_rate` (which is also the rate of those that did not
    /// ask). None: not capped.
    pub fn interval_for(&self, topic: &str, server_max: Option<f64>) -> Option<Duration> {
        let asked = |sel: &Selector| {
            let own = self.rates.as_ref().and_then(|r| r.get(sel));
            match (own, server_max) {
                (Some(r), Some(m)) => Some(r.min(m)),
                (r, m) => r.or(m),
            }
        };
        let mut fastest: Option<f64> = None;
        let mut covering = self
            .prefixes
            .iter()
            .filter(|p| topic.starts_with(&***p))
            .map(|p| Selector::Prefix(p.clone()))
            .collect::<Vec<_>>();
        if self.exact.contains(topic) {
            covering.push(Selector::Exact(topic.into()));
        }
        for sel in &covering {
            let rate = asked(sel)?;
            fastest = Some(fastest.map_or(rate, |f: f64| f.max(rate)));
        }
        fastest.map(|r| Duration::from_secs_f64(1.0 / r))
    }

    /// Does any subscription cover `topic`?
    ///
    /// O(min(patterns, topic length × log patterns)): with many patterns,
    /// each prefix of the topic is looked up, so a wildcard subscribe over
    /// many topics by a client holding many patterns stays linear.
    pub fn covers(&self, topic: &str) -> bool {
        if self.exact.contains(topic) {
            return true;
        }
        if self.prefixes.len() <= 8 {
            return self.prefixes.iter().any(|p| topic.starts_with(&**p));
        }
        (0..=topic.len())
            .filter(|&i| topic.is_char_boundary(i))
            .any(|i| self.has_prefix(&topic[..i]))
    }
}

/// A sorted set of topic names.
#[derive(Default)]
pub(crate) struct ExactSet(Vec<Arc<str>>);

impl ExactSet {
    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|t| (**t).cmp(topic))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.find(topic).is_ok()
    }

    /// Adds `topic`; false if it was there.
    pub fn insert(&mut self, topic: Arc<str>) -> bool {
        match self.find(&topic) {
            Ok(_) => false,
            Err(i) => {
                // Exact growth: a connection's subscriptions change rarely and
                // idle connections are most of a server's memory.
                self.0.reserve_exact(1);
                self.0.insert(i, topic);
                true
            }
        }
    }

    /// Removes `topic`; false if it was not there.
    pub fn remove(&mut self, topic: &str) -> bool {
        match self.find(topic) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// The topics, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter()
    }

    /// Empties the set, returning its topics.
    pub fn take_all(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_restrictive_covering_subscription_sets_the_interval() {
        let mut subs = Subscriptions::default();
        subs.exact.insert("FX.EURUSD".into());
        subs.add_prefix("FX.".into());
        let exact = Selector::Exact("FX.EURUSD".into());
        let fx = Selector::Prefix("FX.".into());
        assert_eq!(
            subs.interval_for("FX.EURUSD", None),
            None,
            "no rates: every update"
        );
        subs.set_rate(&exact, Some(4.0));
        assert_eq!(
            subs.interval_for("FX.EURUSD", None),
            None,
            "FX.* is not capped"
        );
        subs.set_rate(&fx, Some(2.0));
        assert_eq!(subs.asked_rate(), None, "the two ask different rates");
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(subs.interval_for("FX.EURUSD", None), ms(250));
        assert_eq!(subs.interval_for("FX.USDJPY", None), ms(500));
        // The server's cap bounds what was asked, and is the default.
        assert_eq!(subs.interval_for("FX.EURUSD", Some(1.0)), ms(1000));
        subs.set_rate(&exact, Some(2.0));
        assert_eq!(subs.asked_rate(), Some(Some(2.0)), "both ask 2/s");
        subs.set_rate(&exact, Some(4.0));
        subs.set_rate(&fx, None);
        assert_eq!(subs.interval_for("FX.USDJPY", Some(10.0)), ms(100));
        subs.set_rate(&exact, None);
        assert_eq!(subs.asked_rate(), Some(None), "no rates asked");
    }

    #[test]
    fn a_book_is_sent_at_its_exact_subscriptions_depth_else_the_longest_patterns() {
        let mut subs = Subscriptions::default();
        subs.add_prefix("".into());
        subs.add_prefix("BTC".into());
        subs.exact.insert("BTC-USD.book".into());
        let exact = Selector::Exact("BTC-USD.book".into());
        let btc = Selector::Prefix("BTC".into());
        assert_eq!(subs.depth_class_for("BTC-USD.book"), 0, "none asked");
        subs.set_depth(&btc, 2);
        assert_eq!(subs.depth_class_for("BTC-EUR.book"), 2, "longest pattern");
        assert_eq!(subs.depth_class_for("ETH-USD.book"), 0, "only * covers it");
        assert_eq!(
            subs.depth_class_for("BTC-USD.book"),
            0,
            "the exact one's default"
        );
        subs.set_depth(&exact, 1);
        assert_eq!(subs.depth_class_for("BTC-USD.book"), 1);
        subs.set_depth(&exact, 0);
        subs.set_depth(&btc, 0);
        assert!(subs.depths.is_none(), "nothing kept once all are default");
    }
}
