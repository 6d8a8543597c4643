//! The map the shard's per-event and per-subscriber lookups go through:
//! keyed by topic name, hashed with `foldhash` instead of the standard
//! SipHash. These lookups run once per event (the index) and once per
//! rate-capped subscriber per update (pacing, held-back updates); SipHash
//! was about a tenth of a shard's time under a rate-capped load. The hasher
//! is seeded per map from a per-process random seed, so names chosen by
//! clients cannot be crafted to collide.

use std::collections::HashMap;
use std::sync::Arc;

/// A map from topic name (or pattern prefix) to `V`.
pub(crate) type TopicMap<V> = HashMap<Arc<str>, V, foldhash::fast::RandomState>;

/// A set of topic names, hashed the same way (a network publisher's
/// topics: looked up once per update it publishes).
pub(crate) type TopicSet = std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>;
