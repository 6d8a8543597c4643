//! A connection's outbound queue: every byte for the socket, in order.
//!
//! Handshake responses, tungstenite's pongs and close frames, acks, snapshots
//! and the shared broadcast frames all land here, so nothing can interleave;
//! the shard writes the queue out once per loop iteration, many frames per
//! `write` syscall.

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
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes not yet written.
    #[inline]
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes as much as the socket takes. Retries `Interrupted`; stops at
    /// `WouldBlock`; any other error is returned and the connection is done.
    pub fn write_to<W: Write>(&mut self, w: &mut W, tally: &mut Tally) -> io::Result<Flushed> {
        while self.pos < self.buf.len() {
            match w.write(&self.buf[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pos += n;
                    tally.bytes += n as u64;
                    tally.writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        Ok(Flushed::All)
    }

    /// The bytes not yet written.
    pub fn front(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` bytes of [`Outbound::front`] as written.
    pub fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
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
}
