//! Which topics and patterns anyone on the server subscribes to: a count
//! per exact topic and per pattern over every connection of every shard,
//! and an event each time one gains its first subscriber or loses its last
//! (for feed handlers that subscribe upstream only to what is wanted).
//!
//! Shards count here on subscribe, unsubscribe and close, never on the
//! delivery path. The events go, in order, to the dispatcher thread
//! (`crate::interest`), which calls the callbacks and tells `/publish`
//! connections: nothing here waits on a callback.

use super::selector::Selector;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use std::collections::HashMap;

/// A topic or pattern gained its first subscriber on the server (`active`)
/// or lost its last.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interest {
    /// The topic (`BTC-USD`) or the pattern (`FX.*`), as subscribed.
    pub selector: String,
    /// A pattern (ends with `*`), not one topic.
    pub pattern: bool,
    /// True: the first subscriber came; false: the last one left.
    pub active: bool,
}

/// The counts, and where their changes go.
pub(crate) struct InterestBook {
    inner: Mutex<HashMap<Selector, u32>>,
    events: Sender<Interest>,
}

impl InterestBook {
    pub fn new(events: Sender<Interest>) -> Self {
        InterestBook {
            inner: Mutex::default(),
            events,
        }
    }

    /// One more subscriber of `sel`.
    pub fn add(&self, sel: &Selector) {
        let mut counts = self.inner.lock();
        let n = counts.entry(sel.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            // Sent under the lock, so the events of one selector keep the
            // order of its counts.
            let _ = self.events.send(event(sel, true));
        }
    }

    /// One subscriber of each of `sels` fewer.
    pub fn remove<'a>(&self, sels: impl IntoIterator<Item = &'a Selector>) {
        let mut counts = self.inner.lock();
        for sel in sels {
            let Some(n) = counts.get_mut(sel) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                counts.remove(sel);
                let _ = self.events.send(event(sel, false));
            }
        }
    }
}

fn event(sel: &Selector, active: bool) -> Interest {
    let (selector, pattern) = match sel {
        Selector::Exact(t) => (t.to_string(), false),
        Selector::Prefix(p) => (format!("{p}*"), true),
    };
    Interest {
        selector,
        pattern,
        active,
    }
}

/// What is wanted now: selector → is a pattern. Kept by the interest
/// thread; read by a shard to tell a `/publish` connection that just opened.
pub(crate) type Active =
    std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, bool>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_at_the_first_and_the_last_subscriber_only() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let book = InterestBook::new(tx);
        let t = Selector::Exact("A".into());
        let p = Selector::Prefix("FX.".into());
        book.add(&t);
        book.add(&t);
        book.add(&p);
        book.remove([&t]);
        book.remove([&t, &p]);
        book.remove([&t]);
        let got: Vec<(String, bool, bool)> = rx
            .try_iter()
            .map(|i| (i.selector, i.pattern, i.active))
            .collect();
        assert_eq!(
            got,
            [
                ("A".into(), false, true),
                ("FX.*".into(), true, true),
                ("A".into(), false, false),
                ("FX.*".into(), true, false),
            ]
        );
    }
}
