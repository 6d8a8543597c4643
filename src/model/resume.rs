//! Resume positions: where a reconnecting client left each topic. The
//! command parser makes them, the topic table answers them from history.

use std::collections::HashMap;

/// Where a reconnecting client left a topic: the last `seq` it has, and the
/// epoch that `seq` belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeFrom {
    /// The last sequence number the client applied.
    pub seq: u64,
    /// The epoch it belongs to.
    pub epoch: String,
}

/// Resume points by topic name, as a subscribe's `since` gives them.
pub type SinceMap = HashMap<String, ResumeFrom>;
