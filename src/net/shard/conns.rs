//! The shard's connections: a slab keyed by poll token, and the counter that
//! gives each connection an id no later one in the slot repeats.

use crate::net::conn::Conn;
use slab::Slab;
use std::ops::{Deref, DerefMut};

pub(super) struct ConnSet {
    slab: Slab<Conn>,
    /// The id the next connection gets; timers hold ids to tell a reused
    /// slot from the connection they were set for.
    pub next_id: u64,
}

impl ConnSet {
    /// Reserved, not touched: untouched pages cost no memory, and the slab
    /// never reallocates (and copies every connection) as it grows.
    pub fn with_capacity(n: usize) -> Self {
        ConnSet {
            slab: Slab::with_capacity(n),
            next_id: 0,
        }
    }

    /// The connection in `token`, if it is still the one with `id`.
    pub fn same(&mut self, token: usize, id: u64) -> Option<&mut Conn> {
        self.slab.get_mut(token).filter(|c| c.id == id)
    }
}

impl Deref for ConnSet {
    type Target = Slab<Conn>;
    fn deref(&self) -> &Slab<Conn> {
        &self.slab
    }
}

impl DerefMut for ConnSet {
    fn deref_mut(&mut self) -> &mut Slab<Conn> {
        &mut self.slab
    }
}
