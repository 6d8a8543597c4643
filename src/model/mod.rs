//! The nouns every layer shares: updates and their prices, book levels,
//! topic names, the wire formats, resume positions and the events the
//! router asks to encode. It imports nothing of the crate's: `engine`,
//! `wire`, `error` and `config` all stand on it.

pub mod book;
pub mod event;
pub mod format;
pub mod liveness;
pub mod resume;
pub mod topic_name;
pub mod update;
