//! One subscriber of a topic on a shard, and the key its connection is
//! known by in the index.

use crate::model::format::Format;

/// One subscriber of a topic on this shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    /// Updates with `seq <= skip_through` are already in the snapshot this
    /// member received, so they are dropped for it.
    pub skip_through: u64,
    /// The connection's member key ([`member_key`]; u32 keeps a member at
    /// 16 bytes: there is one per subscriber per topic).
    key: u32,
    /// The topic's clear count this member's numbering belongs to: a member
    /// that joined after a clear this shard has not heard of yet is in the
    /// new numbering, and the old one's events are not for it.
    pub generation: u16,
    pub fmt: Format,
    /// Of a book topic: the depth class the connection receives it at,
    /// looked up at its first book update (`UNRESOLVED` until then, and
    /// again after its depth changes), so deliveries do not look it up.
    pub class: u8,
}

/// `Member::class` not looked up yet.
pub(crate) const UNRESOLVED: u8 = u8::MAX;

impl Member {
    pub(super) fn new(key: usize, fmt: Format, skip_through: u64, generation: u16) -> Member {
        Member {
            skip_through,
            key: key as u32,
            generation,
            fmt,
            class: UNRESOLVED,
        }
    }

    /// The connection's member key.
    #[inline]
    pub fn key(&self) -> usize {
        self.key as usize
    }

    /// The connection's slab key.
    #[inline]
    pub fn token(&self) -> usize {
        token_of(self.key as usize)
    }
}

/// The slab key a member key ([`member_key`]) names.
#[inline]
pub(crate) fn token_of(key: usize) -> usize {
    key & TOKEN_MASK
}

/// Slab keys a shard can give members: 16 million connections per shard.
const TOKEN_BITS: u32 = 24;
const TOKEN_MASK: usize = (1 << TOKEN_BITS) - 1;

/// The key a connection's memberships carry: its slab key, and 8 bits of
/// its connection id. A connection that is gone may still have memberships
/// being withdrawn ([`leaves`]) when its slab slot is reused; the new
/// connection's key differs unless their ids are a multiple of 256 apart,
/// and then the shard completes the old withdrawals first
/// ([`ShardIndex::finish_leaves`]). None: a slab key too large to be one.
pub(crate) fn member_key(token: usize, conn_id: u64) -> Option<usize> {
    (token <= TOKEN_MASK).then_some(token | ((conn_id as usize & 0xff) << TOKEN_BITS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_member_stays_16_bytes() {
        // One per subscriber per topic: most of a busy server's index.
        assert_eq!(std::mem::size_of::<super::Member>(), 16);
    }
}
