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
//! a pong not sent yet is replaced by the newer one (RFC 6455 §5.5.3 allows
//! answering only the latest ping), so a client that pings without reading
//! cannot grow it. A close frame drops the data behind it, which the peer
//! must not receive after a close (RFC 6455 §5.5.1). On a TLS connection they
//! also wait for what rustls already holds (at most its 64 KiB buffer).

use crate::wire::frame::{frame_extent, OP_CLOSE, OP_PONG};
use std::io::{self, Write};

/// Capacity kept after the queue drains; above it the memory is returned so an
/// idle connection that once absorbed a burst costs nothing.
const KEEP_CAPACITY: usize = 16 * 1024;

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
        if self.pos > 0
            && self.pos >= self.buf.len() / 2
            && self.buf.capacity() - self.buf.len() < bytes.len()
        {
            // Reclaim the written front instead of growing.
            let next = self.next_boundary();
            self.buf.drain(..self.pos);
            self.boundary = next.map(|b| b - self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// From here on every push is a whole WebSocket frame (called after the
    /// handshake response is queued).
    pub fn start_frames(&mut self) {
        self.boundary = Some(self.buf.len());
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
            self.buf.truncate(at);
        }
        if pong_only {
            self.drop_unsent_pong();
        }
        self.ctrl.extend_from_slice(bytes);
    }

    /// Removes a pong from the control queue that no byte of was written.
    /// The queue holds a handful of small frames, so this is O(1).
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
        self.buf.len() - self.pos + self.ctrl.len() - self.ctrl_pos
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes as much as the socket takes. Retries `Interrupted`; stops at
    /// `WouldBlock`; any other error is returned and the connection is done.
    pub fn write_to<W: Write>(&mut self, w: &mut W, tally: &mut Tally) -> io::Result<Flushed> {
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
mod tests {
    use super::*;

    /// A writer that accepts `room` bytes, then blocks.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(7);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_blocked_writes() {
        let mut out = Outbound::default();
        let mut pipe = Pipe {
            got: vec![],
            room: 10,
        };
        out.push(b"hello ");
        out.push(b"world");
        let mut tally = Tally::default();
        assert_eq!(
            out.write_to(&mut pipe, &mut tally).unwrap(),
            Flushed::Blocked
        );
        assert_eq!(out.pending(), 1);
        out.push(b"!");
        pipe.room = 100;
        assert_eq!(out.write_to(&mut pipe, &mut tally).unwrap(), Flushed::All);
        assert_eq!(tally.bytes, 12);
        assert_eq!(pipe.got, b"hello world!");
        assert!(out.is_empty());
    }

    fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
        let mut fb = crate::wire::frame::FrameBuf::default();
        fb.payload().extend_from_slice(payload);
        fb.finish(op).to_vec()
    }

    /// Splits written bytes back into (opcode, payload) frames.
    fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut v = vec![];
        while let Some((op, len)) = frame_extent(b) {
            let head = match b[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            v.push((op, b[head..len].to_vec()));
            b = &b[len..];
        }
        assert!(b.is_empty(), "trailing bytes");
        v
    }

    #[test]
    fn a_pong_goes_right_after_the_frame_on_the_wire() {
        let mut out = Outbound::default();
        let head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        out.push(head);
        out.start_frames();
        for i in 0..5u8 {
            out.push(&frame(2, &[i; 20]));
        }
        // The 101 and 10 bytes of the first frame are on the wire.
        let mut pipe = Pipe {
            got: vec![],
            room: head.len() + 10,
        };
        let mut tally = Tally::default();
        out.write_to(&mut pipe, &mut tally).unwrap();
        out.push_control(&frame(0xA, b"p"));
        pipe.room = usize::MAX;
        assert_eq!(out.write_to(&mut pipe, &mut tally).unwrap(), Flushed::All);
        let ops: Vec<u8> = frames(&pipe.got[head.len()..])
            .iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(ops, [2, 0xA, 2, 2, 2, 2]);
        // Drained: the next control frame simply goes first.
        out.push(&frame(2, b"x"));
        out.push_control(&frame(0x9, b""));
        let mut pipe = Pipe {
            got: vec![],
            room: usize::MAX,
        };
        out.write_to(&mut pipe, &mut tally).unwrap();
        let ops: Vec<u8> = frames(&pipe.got).iter().map(|f| f.0).collect();
        assert_eq!(ops, [0x9, 2]);
    }

    #[test]
    fn a_close_drops_the_data_behind_it() {
        let mut out = Outbound::default();
        out.start_frames();
        for i in 0..4u8 {
            out.push(&frame(2, &[i; 300]));
        }
        let mut pipe = Pipe {
            got: vec![],
            room: 400,
        };
        let mut tally = Tally::default();
        out.write_to(&mut pipe, &mut tally).unwrap();
        out.push_control(&frame(OP_CLOSE, &[0x03, 0xF0]));
        pipe.room = usize::MAX;
        out.write_to(&mut pipe, &mut tally).unwrap();
        let got = frames(&pipe.got);
        let ops: Vec<u8> = got.iter().map(|f| f.0).collect();
        assert_eq!(ops, [2, 2, OP_CLOSE]);
        assert_eq!(
            got[1].1,
            vec![1u8; 300],
            "the partly written frame is finished"
        );
    }

    #[test]
    fn the_boundary_survives_reclaiming_the_front() {
        let mut out = Outbound::default();
        out.start_frames();
        let big = frame(2, &[7; 200]);
        for _ in 0..8 {
            out.push(&big);
        }
        let mut pipe = Pipe {
            got: vec![],
            room: 1000,
        };
        let mut tally = Tally::default();
        out.write_to(&mut pipe, &mut tally).unwrap();
        // Push until the written front is reclaimed instead of growing.
        for _ in 0..3 {
            if out.pos == 0 {
                break;
            }
            out.push(&big);
        }
        assert_eq!(out.pos, 0, "the front was reclaimed");
        out.push_control(&frame(0xA, b"late"));
        pipe.room = usize::MAX;
        out.write_to(&mut pipe, &mut tally).unwrap();
        let got = frames(&pipe.got);
        let pong = got.iter().position(|f| f.0 == 0xA).unwrap();
        assert_eq!(pong, 5, "after the fifth frame, which was partly written");
        assert!(got.iter().all(|f| f.0 == 0xA || f.1 == vec![7; 200]));
    }

    #[test]
    fn pongs_from_a_ping_flood_do_not_pile_up_behind_a_backlog() {
        let mut out = Outbound::default();
        out.start_frames();
        let data = frame(2, &[9; 1000]);
        for _ in 0..1000 {
            out.push(&data);
        }
        let backlog = out.pending();
        let start = out.buf.as_ptr();
        for i in 0..10_000u32 {
            out.push_control(&frame(0xA, &i.to_be_bytes()));
        }
        // One pong waits (the latest), and the backlog never moved.
        assert_eq!(out.pending(), backlog + frame(0xA, &[0; 4]).len());
        assert_eq!(out.buf.as_ptr(), start);
        let mut pipe = Pipe {
            got: vec![],
            room: usize::MAX,
        };
        out.write_to(&mut pipe, &mut Tally::default()).unwrap();
        let got = frames(&pipe.got);
        assert_eq!(got[0], (0xA, 9_999u32.to_be_bytes().to_vec()));
        assert_eq!(got.len(), 1001);
    }

    #[test]
    fn without_framing_control_bytes_are_appended() {
        let mut out = Outbound::default();
        out.push(b"HTTP/1.1 200 OK\r\n");
        out.push_control(&frame(0xA, b""));
        out.push_control(b"not a frame");
        let mut pipe = Pipe {
            got: vec![],
            room: usize::MAX,
        };
        out.write_to(&mut pipe, &mut Tally::default()).unwrap();
        assert!(pipe.got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(pipe.got.ends_with(b"not a frame"));
    }
}
