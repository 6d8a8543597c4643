//! A connection's outbound queue: every byte for the socket, in order.
//!
//! Handshake responses, tungstenite's pongs and close frames, acks, snapshots
//! and the shared broadcast frames all land here, so nothing can interleave;
//! the shard writes the queue out once per loop iteration, many frames per
//! `write` syscall.
//!
//! Control frames (pongs, heartbeat pings, closes) do not wait behind a
//! backlog of data: [`Outbound::push_control`] keeps them in a small queue of
//! their own that is written at the next frame boundary, right after the
//! frame that is partly on the wire. That costs O(1) whatever the backlog (no
//! bytes of the backlog move), and the control queue stays a few frames long:
//! past 16 pongs not sent yet, the oldest is dropped for the newer one (RFC
//! 6455 §5.5.3 allows answering only the latest ping), so a client that
//! pings without reading cannot grow it. A close frame drops the data behind it, which the peer
//! must not receive after a close (RFC 6455 §5.5.1). On a TLS connection they
//! also wait for what rustls already holds (at most its 64 KiB buffer).

pub(crate) mod batch;

use crate::wire::frame::{frame_extent, MAX_HEADER, OP_CLOSE, OP_PONG};
use batch::{Batch, Joined};
use std::io::{self, Write};

/// Capacity kept after the queue drains; above it the memory is returned so an
/// idle connection that once absorbed a burst costs nothing.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Pongs that may wait unsent: each ping of a burst gets its own pong
/// (clients match them by payload, as the Autobahn suite's case 2.10 does),
/// while a client that pings without reading holds at most this many
/// (RFC 6455 §5.5.3 allows answering only the latest).
const MAX_UNSENT_PONGS: usize = 16;

/// Above this a queue grows by a quarter, not by doubling: only a backed-up
/// connection's queue gets this big, and its memory counts against the
/// budgets by capacity, so at most a quarter of it is room not yet used.
const DOUBLE_UP_TO: usize = 64 * 1024;

/// The capacity a queue that must hold `need` bytes grows to.
fn grown_capacity(capacity: usize, need: usize) -> usize {
    let step = if capacity < DOUBLE_UP_TO {
        capacity
    } else {
        capacity / 4
    };
    need.max(capacity + step).max(64)
}

/// Bytes waiting for the socket.
#[derive(Debug, Default)]
pub struct Outbound {
    buf: Vec<u8>,
    /// Bytes before this were written already.
    pos: usize,
    /// Once the connection speaks WebSocket: an offset where a frame starts,
    /// with only whole frames from there to the end. Moved forward lazily, by
    /// reading frame headers, when a control frame needs the next boundary.
    boundary: Option<usize>,
    /// Whole control frames that go out at the next frame boundary of `buf`.
    ctrl: Vec<u8>,
    /// Bytes of `ctrl` already written.
    ctrl_pos: usize,
    /// A batch session's events of this flush, not yet one message
    /// (boxed: most sessions do not batch).
    batch: Option<Box<Batch>>,
}

/// Counts of what flushes wrote, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Bytes written.
    pub bytes: u64,
    /// Successful `write` calls.
    pub writes: u64,
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything was written.
    All,
    /// The socket is full; the rest waits for the next writable event.
    Blocked,
}

impl Outbound {
    /// Appends bytes.
    ///
    /// Hot path: a `memcpy` into a buffer that is reused; it allocates only when
    /// the queue grows past its capacity, never per frame in steady state, and
    /// never serializes anything.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.batch {
            if self.boundary.is_some() {
                if b.joins() && b.add(bytes) {
                    return;
                }
                if !b.joins() {
                    if let Some(frame) = b.through_context(bytes) {
                        return self.append(&frame);
                    }
                }
            }
            // Anything else (a close after the updates) keeps its place.
            self.seal();
        }
        self.append(bytes);
    }

    /// Appends bytes to the queue proper.
    #[inline]
    fn append(&mut self, bytes: &[u8]) {
        self.make_room(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// Makes room for `n` more bytes: reclaims the written front when it is
    /// at least half the queue, or when it alone makes the room and is at
    /// least an eighth of the capacity; else grows ([`grown_capacity`]).
    /// Without the second rule a slow reader's buffer grew while most of it
    /// was bytes already written (a queue held under the conflation mark
    /// reached 1.5 times it); with it a reclaim moves at most eight bytes
    /// per byte written, and only when the buffer is full.
    #[inline]
    fn make_room(&mut self, n: usize) {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        let front_fits = self.pos >= cap / 8 && len - self.pos + n <= cap;
        if self.pos > 0 && cap - len < n && (self.pos >= len / 2 || front_fits) {
            // Reclaim the written front instead of growing.
            let next = self.next_boundary();
            self.buf.drain(..self.pos);
            self.boundary = next.map(|b| b - self.pos);
            self.pos = 0;
        }
        let need = self.buf.len() + n;
        if need > self.buf.capacity() {
            self.buf
                .reserve_exact(grown_capacity(self.buf.capacity(), need) - self.buf.len());
        }
    }

    /// From here on every push is a whole WebSocket frame (called after the
    /// handshake response is queued).
    pub fn start_frames(&mut self) {
        self.boundary = Some(self.buf.len());
    }

    /// From here on the data frames of `opcode` pushed between two flushes
    /// go out as one message ([`batch`]), compressed from `deflate_at`
    /// bytes if set.
    pub fn start_batches(&mut self, opcode: u8, deflate_at: Option<usize>) {
        self.batch = Some(Box::new(Batch::new(opcode, true, deflate_at)));
    }

    /// From here on every data frame of `opcode` is compressed through the
    /// connection's own context (per-connection permessage-deflate).
    pub(crate) fn start_context(&mut self, opcode: u8, ctx: Box<batch::OwnContext>) {
        let b = self
            .batch
            .get_or_insert_with(|| Box::new(Batch::new(opcode, false, None)));
        b.set_context(ctx);
    }

    /// Is this a batch session?
    #[inline]
    pub fn batching(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.joins())
    }

    /// Does this connection shape its own frames (batches, or its own
    /// compression context)? Then shared compressed frames are not for it.
    #[inline]
    pub fn shaped(&self) -> bool {
        self.batch.is_some()
    }

    /// Has a compression context of its own?
    pub fn own_context(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.has_context())
    }

    /// Turns the staged events of a batch session into one message at the
    /// end of the queue; called before every flush.
    pub fn seal(&mut self) {
        let Some(mut b) = self.batch.take() else {
            return;
        };
        match b.take() {
            Joined::Nothing => {}
            Joined::Plain(head, at, payload) => {
                self.make_room(MAX_HEADER - at + payload.len());
                self.buf.extend_from_slice(&head[at..]);
                self.buf.extend_from_slice(payload);
            }
            Joined::Compressed(frame) => self.append(&frame),
        }
        b.done();
        self.batch = Some(b);
    }

    /// The first frame start at or after the write position.
    fn next_boundary(&mut self) -> Option<usize> {
        let mut b = self.boundary?;
        while b < self.pos {
            match frame_extent(&self.buf[b..]) {
                Some((_, len)) => b += len,
                None => {
                    // Not frames after all; stop jumping the queue.
                    self.boundary = None;
                    return None;
                }
            }
        }
        self.boundary = Some(b);
        Some(b)
    }

    /// Queues `frame` (a final data frame of ours), compressed first when
    /// `deflate_at` is set, the frame is at least that long and compressing
    /// shortens it. Compressing here is work for this connection alone: it
    /// is for frames made for it alone (a book snapshot), never for the
    /// shared event frames, which are compressed once for everyone.
    pub fn push_event(&mut self, frame: &[u8], deflate_at: Option<usize>) {
        match deflate_at.filter(|&min| frame.len() >= min) {
            Some(_) => match crate::wire::deflate::deflate_ours(frame) {
                Some(small) => self.push(&small),
                None => self.push(frame),
            },
            None => self.push(frame),
        }
    }

    /// Queues whole control frames ahead of queued data, right after the
    /// frame being written. If they include a close frame, the data behind
    /// them is dropped. Bytes that are not whole frames, or a queue that is
    /// not framed yet, are simply appended.
    ///
    /// O(1) in the backlog: the frames go to the small control queue, and an
    /// unsent pong there is replaced by a newer one, so it never grows with
    /// the number of pings.
    pub fn push_control(&mut self, bytes: &[u8]) {
        let mut closes = false;
        let mut pong_only = true;
        let mut rest = bytes;
        while !rest.is_empty() {
            match frame_extent(rest) {
                Some((op, len)) => {
                    closes |= op == OP_CLOSE;
                    pong_only &= op == OP_PONG;
                    rest = &rest[len..];
                }
                None => return self.push(bytes),
            }
        }
        let Some(at) = self.next_boundary() else {
            return self.push(bytes);
        };
        if closes {
            if let Some(b) = &mut self.batch {
                b.clear();
            }
            // Only the frame on the wire is left: give the rest's memory
            // back now, not when the connection ends.
            self.buf = self.buf[self.pos..at].to_vec();
            self.pos = 0;
            self.boundary = Some(self.buf.len());
        }
        if pong_only && self.unsent_pongs() >= MAX_UNSENT_PONGS {
            self.drop_unsent_pong();
        }
        self.ctrl.extend_from_slice(bytes);
    }

    /// Pongs in the control queue that no byte of was written.
    fn unsent_pongs(&self) -> usize {
        let mut at = 0;
        let mut n = 0;
        while let Some((op, len)) = frame_extent(&self.ctrl[at..]) {
            n += usize::from(op == OP_PONG && at >= self.ctrl_pos);
            at += len;
        }
        n
    }

    /// Removes the oldest pong from the control queue that no byte of was
    /// written. The queue holds a few small frames, so this is O(1).
    fn drop_unsent_pong(&mut self) {
        let mut at = 0;
        while let Some((op, len)) = frame_extent(&self.ctrl[at..]) {
            if op == OP_PONG && at >= self.ctrl_pos {
                self.ctrl.drain(at..at + len);
                return;
            }
            at += len;
        }
    }

    /// Bytes not yet written.
    #[inline]
    pub fn pending(&self) -> usize {
        let staged = self.batch.as_ref().map_or(0, |b| b.len());
        self.buf.len() - self.pos + self.ctrl.len() - self.ctrl_pos + staged
    }

    /// Memory the queue holds: its buffers' capacity, written front
    /// included. This, not `pending`, is what the budgets count: RSS follows
    /// capacity (counted by pending bytes, RSS grew 1.6x what was counted).
    #[inline]
    pub fn held(&self) -> usize {
        let staged = self.batch.as_ref().map_or(0, |b| b.capacity());
        self.buf.capacity() + self.ctrl.capacity() + staged
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes as much as the socket takes. Retries `Interrupted`; stops at
    /// `WouldBlock`; any other error is returned and the connection is done.
    pub fn write_to<W: Write>(&mut self, w: &mut W, tally: &mut Tally) -> io::Result<Flushed> {
        self.seal();
        while !self.is_empty() {
            match w.write(self.front()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.advance(n);
                    tally.bytes += n as u64;
                    tally.writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// Is it the control queue's turn: control frames wait and the data is
    /// at a frame boundary (or all written)? While control frames wait,
    /// `boundary` is kept at or after `pos` by `push_control` and `advance`.
    fn ctrl_turn(&self) -> bool {
        if self.ctrl_pos >= self.ctrl.len() {
            return false;
        }
        match self.boundary {
            Some(b) if b > self.pos => false,
            Some(b) if b == self.pos => true,
            _ => self.pos == self.buf.len(),
        }
    }

    /// The next bytes to write: the control queue when the data is at a
    /// frame boundary, else the data up to the next boundary (the rest of
    /// the frame on the wire) while control frames wait, else all the data.
    pub fn front(&self) -> &[u8] {
        if self.ctrl_turn() {
            return &self.ctrl[self.ctrl_pos..];
        }
        match self.boundary {
            Some(b) if self.ctrl_pos < self.ctrl.len() && b > self.pos => &self.buf[self.pos..b],
            _ => &self.buf[self.pos..],
        }
    }

    /// Marks `n` bytes of [`Outbound::front`] as written.
    pub fn advance(&mut self, n: usize) {
        if self.ctrl_turn() {
            self.ctrl_pos = (self.ctrl_pos + n).min(self.ctrl.len());
            if self.ctrl_pos == self.ctrl.len() {
                self.ctrl.clear();
                self.ctrl_pos = 0;
            }
        } else {
            self.pos = (self.pos + n).min(self.buf.len());
        }
        if self.ctrl_pos < self.ctrl.len() {
            // Control frames wait: find where the frame on the wire ends.
            self.next_boundary();
        }
        if self.is_empty() {
            self.reset();
        }
    }

    /// Empties the written queue, returning a burst's memory.
    fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if self.boundary.is_some() {
            self.boundary = Some(0);
        }
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

impl Write for Outbound {
    /// Never blocks and never fails: tungstenite writes its control frames here.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
