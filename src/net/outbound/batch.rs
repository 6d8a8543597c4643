//! Batch sessions (`tickcast.json+batch`, `tickcast.msgpack+batch`): the
//! events one flush sends to a connection go out as one WebSocket message,
//! JSON one event per line, MessagePack values back to back. A browser then
//! runs one `onmessage` for many events, and, where permessage-deflate was
//! negotiated, the batch is compressed as a whole: many similar events in
//! one message compress far better than each alone.
//!
//! Compressing a batch is work for its connection alone (its bytes are its
//! own), done once per flush, not once per event.
//!
//! The same stage holds a per-connection compression context
//! (`[compression] per_connection`): every data frame to such a connection,
//! batched or not, is compressed through its own window.

use crate::wire::deflate::Context;
use crate::wire::frame::{write_header_before, MAX_HEADER};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The events of the flush being built, and the connection's own
/// compression context if it has one.
#[derive(Debug)]
pub(super) struct Batch {
    /// Text (JSON) or binary (MessagePack).
    opcode: u8,
    /// A batch session: events are joined until the flush.
    join: bool,
    /// The events' payloads, joined.
    payload: Vec<u8>,
    /// Batches this long or longer go compressed (permessage-deflate).
    deflate_at: Option<usize>,
    /// Per-connection mode: its own window (and the server-wide count of
    /// contexts it holds a place in).
    context: Option<Box<OwnContext>>,
}

/// A per-connection context and its place in the server's count.
#[derive(Debug)]
pub(crate) struct OwnContext {
    ctx: Context,
    count: Arc<AtomicUsize>,
}

impl OwnContext {
    /// Takes a place in `count` if fewer than `most` are taken.
    pub fn reserve(count: &Arc<AtomicUsize>, most: usize) -> Option<Box<OwnContext>> {
        let taken = count.fetch_add(1, Ordering::Relaxed);
        if taken >= most {
            count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Box::new(OwnContext {
            ctx: Context::default(),
            count: count.clone(),
        }))
    }
}

impl Drop for OwnContext {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What [`Batch::take`] gives to append to a queue.
pub(super) enum Joined<'a> {
    /// Nothing was staged.
    Nothing,
    /// A frame header and the payload to put after it.
    Plain([u8; MAX_HEADER], usize, &'a [u8]),
    /// A whole compressed frame.
    Compressed(Vec<u8>),
}

impl Batch {
    pub fn new(opcode: u8, join: bool, deflate_at: Option<usize>) -> Self {
        Batch {
            opcode,
            join,
            payload: Vec::new(),
            deflate_at,
            context: None,
        }
    }

    /// Joins events until the flush (a batch session)?
    pub fn joins(&self) -> bool {
        self.join
    }

    /// Compresses through the connection's own window from now on.
    pub fn set_context(&mut self, ctx: Box<OwnContext>) {
        self.context = Some(ctx);
    }

    /// Has a context of its own?
    pub fn has_context(&self) -> bool {
        self.context.is_some()
    }

    /// `frame`'s payload if it is one whole, final, uncompressed data frame
    /// of this session's opcode.
    fn payload_of<'f>(&self, frame: &'f [u8]) -> Option<&'f [u8]> {
        if *frame.first()? != 0x80 | self.opcode {
            return None;
        }
        crate::wire::frame::payload_of(frame)
    }

    /// Not joining, with a context: `frame` compressed through it, to
    /// append; None when it is not a data frame of ours.
    pub fn through_context(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let payload = self.payload_of(frame)?;
        let own = self.context.as_mut()?;
        let mut out = Vec::with_capacity(payload.len() / 2 + 16);
        own.ctx.frame(self.opcode, payload, &mut out);
        Some(out)
    }

    /// Adds `frame`'s payload if it is one whole, final, uncompressed data
    /// frame of this session's opcode; false (nothing added) otherwise.
    pub fn add(&mut self, frame: &[u8]) -> bool {
        let Some(payload) = self.payload_of(frame) else {
            return false;
        };
        if self.opcode == crate::wire::frame::OP_TEXT && !self.payload.is_empty() {
            self.payload.push(b'\n');
        }
        self.payload.extend_from_slice(payload);
        true
    }

    /// Bytes staged.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Memory it holds.
    pub fn capacity(&self) -> usize {
        self.payload.capacity()
    }

    /// Drops what is staged (a close frame overtakes it).
    pub fn clear(&mut self) {
        self.payload.clear();
    }

    /// The staged events as one message; the caller appends it, then
    /// calls [`Batch::done`].
    pub fn take(&mut self) -> Joined<'_> {
        if self.payload.is_empty() {
            return Joined::Nothing;
        }
        if let Some(own) = &mut self.context {
            // Its own window: even a short batch compresses well.
            let mut frame = Vec::with_capacity(self.payload.len() / 3 + 16);
            own.ctx.frame(self.opcode, &self.payload, &mut frame);
            return Joined::Compressed(frame);
        }
        if self.deflate_at.is_some_and(|min| self.payload.len() >= min) {
            let mut frame = Vec::with_capacity(self.payload.len() / 3 + 16);
            crate::wire::deflate::deflate_frame(self.opcode, &self.payload, &mut frame);
            if frame.len() < self.payload.len() {
                return Joined::Compressed(frame);
            }
        }
        let mut head = [0u8; MAX_HEADER];
        let at = write_header_before(&mut head, self.opcode, self.payload.len());
        Joined::Plain(head, at, &self.payload)
    }

    /// Empties the stage once its message is queued, returning a burst's
    /// memory.
    pub fn done(&mut self) {
        self.payload.clear();
        if self.payload.capacity() > super::KEEP_CAPACITY {
            self.payload = Vec::new();
        }
    }
}
