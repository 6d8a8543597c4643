//! The data plane, without sockets: what an update is, the topic table that
//! sequences and remembers it, the router thread that encodes it once, the
//! publisher handles that feed it, and the link types the shards receive.
//!
//! Nothing here imports `net`: the router hands shards [`link::ShardMsg`]s
//! through [`link::ShardLink`]s and never knows what a connection is.

pub(crate) mod budget;
pub(crate) mod epoch;
pub(crate) mod history;
pub(crate) mod inbox;
pub(crate) mod ingest;
pub(crate) mod interest;
pub(crate) mod link;
pub(crate) mod op;
pub(crate) mod router;
pub(crate) mod selector;
pub(crate) mod table;
