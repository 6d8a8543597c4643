//! Server-to-client WebSocket frames.
//!
//! Frames from a server are never masked (RFC 6455 §5.1), so one encoded frame
//! is byte-for-byte the same for every subscriber that uses its format. That is
//! what lets the router encode an update once and the shards copy bytes.

pub use crate::model::format::{OP_BINARY, OP_TEXT};

/// Longest frame header a server writes (no mask): 2 + 8 bytes.
pub const MAX_HEADER: usize = 10;

/// Writes the header of a final, unmasked frame into the end of `buf[..MAX_HEADER]`
/// and returns where it starts, so a payload already placed at `buf[MAX_HEADER..]`
/// becomes a frame without being moved.
pub fn write_header_before(buf: &mut [u8], opcode: u8, payload_len: usize) -> usize {
    let first = 0x80 | opcode;
    if payload_len < 126 {
        buf[MAX_HEADER - 2] = first;
        buf[MAX_HEADER - 1] = payload_len as u8;
        MAX_HEADER - 2
    } else if payload_len <= u16::MAX as usize {
        buf[MAX_HEADER - 4] = first;
        buf[MAX_HEADER - 3] = 126;
        buf[MAX_HEADER - 2..MAX_HEADER].copy_from_slice(&(payload_len as u16).to_be_bytes());
        MAX_HEADER - 4
    } else {
        buf[0] = first;
        buf[1] = 127;
        buf[2..MAX_HEADER].copy_from_slice(&(payload_len as u64).to_be_bytes());
        0
    }
}

/// Opcode of a continuation frame.
pub const OP_CONT: u8 = 0x0;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// The payload of `frame` if it is exactly one whole unmasked frame (one
/// of the server's own).
pub fn payload_of(frame: &[u8]) -> Option<&[u8]> {
    let (_, len) = frame_extent(frame)?;
    if len != frame.len() || frame[1] & 0x80 != 0 {
        return None;
    }
    let at = match frame[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(at..)
}

/// Reads the frame header at the start of `buf`: the opcode and the whole
/// frame's length (header, mask key and payload). `None` if `buf` does not
/// start with a complete header or the frame runs past the end of `buf`.
pub fn frame_extent(buf: &[u8]) -> Option<(u8, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (header, payload): (usize, usize) = match b1 & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        n => (2, n as usize),
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let len = header.checked_add(mask)?.checked_add(payload)?;
    (len <= buf.len()).then_some((b0 & 0x0f, len))
}

/// A scratch buffer that serializes a payload after a reserved header gap and
/// then yields the finished frame. Reused across updates by its owner so the
/// router does not allocate per encode (only the shared copy it keeps).
#[derive(Debug, Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Clears the buffer and returns the vector to serialize the payload into.
    pub fn payload(&mut self) -> &mut Vec<u8> {
        self.buf.clear();
        self.buf.resize(MAX_HEADER, 0);
        &mut self.buf
    }

    /// Puts the header in front of the payload written since [`FrameBuf::payload`]
    /// and returns the whole frame.
    pub fn finish(&mut self, opcode: u8) -> &[u8] {
        let len = self.buf.len() - MAX_HEADER;
        let start = write_header_before(&mut self.buf, opcode, len);
        &self.buf[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut fb = FrameBuf::default();
        fb.payload().extend_from_slice(payload);
        fb.finish(opcode).to_vec()
    }

    #[test]
    fn header_length_follows_payload_size() {
        let f = frame(OP_TEXT, b"hi");
        assert_eq!(f, [0x81, 2, b'h', b'i']);
        let f = frame(OP_BINARY, &[7; 200]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 200]);
        assert_eq!(f.len(), 204);
        let f = frame(OP_TEXT, &vec![1; 70_000]);
        assert_eq!(&f[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(f[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn the_payload_of_one_whole_server_frame() {
        for size in [0, 125, 126, 70_000] {
            let payload = vec![3u8; size];
            let f = frame(OP_BINARY, &payload);
            assert_eq!(payload_of(&f), Some(&payload[..]), "{size}");
            assert_eq!(payload_of(&f[..f.len() - 1]), None, "a cut frame");
        }
        let mut two = frame(OP_TEXT, b"a");
        two.extend(frame(OP_TEXT, b"b"));
        assert_eq!(payload_of(&two), None, "two frames are not one");
        assert_eq!(payload_of(&[0x81, 0x81, 1, 2, 3, 4, b'x']), None, "masked");
    }
}
