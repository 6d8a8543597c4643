//! Batch sessions (`tickcast.json+batch`, `tickcast.msgpack+batch`): the
//! events one flush sends to a connection go out as one WebSocket message,
//! JSON one event per line, MessagePack values back to back. A browser then
//! runs one `onmessage` for many events, and, where permessage-deflate was
//! negotiated, the batch is compressed as a whole: many similar events in
//! one message compress far better than each alone.
//!
//! Compressing a batch is work for its connection alone (its bytes are its
//! own), done once per flush, not once per event.

use crate::wire::frame::{write_header_before, MAX_HEADER};

/// The events of the flush being built.
#[derive(Debug)]
pub(super) struct Batch {
    /// Text (JSON) or binary (MessagePack).
    opcode: u8,
    /// The events' payloads, joined.
    payload: Vec<u8>,
    /// Batches this long or longer go compressed (permessage-deflate).
    deflate_at: Option<usize>,
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
    pub fn new(opcode: u8, deflate_at: Option<usize>) -> Self {
        Batch {
            opcode,
            payload: Vec::new(),
            deflate_at,
        }
    }

    /// Adds `frame`'s payload if it is one whole, final, uncompressed data
    /// frame of this session's opcode; false (nothing added) otherwise.
    pub fn add(&mut self, frame: &[u8]) -> bool {
        let Some(&b0) = frame.first() else {
            return false;
        };
        if b0 != 0x80 | self.opcode {
            return false;
        }
        let Some((_, len)) = crate::wire::frame::frame_extent(frame) else {
            return false;
        };
        if len != frame.len() {
            return false;
        }
        let at = match frame[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        if self.opcode == crate::wire::frame::OP_TEXT && !self.payload.is_empty() {
            self.payload.push(b'\n');
        }
        self.payload.extend_from_slice(&frame[at..]);
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
