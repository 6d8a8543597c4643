//! Client-to-server WebSocket frames (RFC 6455 §5), read without tungstenite.
//!
//! tickcast reads its clients' frames itself because it negotiates
//! permessage-deflate (RFC 7692), whose compressed messages carry RSV1, a
//! bit tungstenite refuses. Owning the reader also means an idle connection
//! keeps no read buffer at all: bytes wait here only while a frame is
//! incomplete. Sans-IO: the connection reads the socket into
//! [`Reader::buffer`] and asks [`Reader::next`] for what it completes.

use super::deflate;
use super::frame::{OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};
use std::borrow::Cow;

/// A complete client message, or a control frame, as [`Reader::next`] gives it.
#[derive(Debug, PartialEq)]
pub enum Got {
    /// A text message (valid UTF-8) or a binary one, inflated if it came compressed.
    Data { text: bool, payload: Vec<u8> },
    /// A ping; the caller answers it with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (an answer to our heartbeat).
    Pong,
    /// A close frame: its status code and reason, if it had them.
    Close(Option<(u16, String)>),
}

/// Why the client's bytes end the session, with the close code it earns.
#[derive(Debug, PartialEq)]
pub enum Broken {
    /// RFC 6455 or RFC 7692 broken: 1002.
    Protocol(Cow<'static, str>),
    /// A message (or what one inflates to) over the limit: 1009.
    TooBig { size: usize, max: usize },
    /// Text that is not UTF-8, or compressed data that does not inflate: 1007.
    Invalid(&'static str),
}

impl Broken {
    /// The close code RFC 6455 §7.4.1 gives this failure.
    pub fn code(&self) -> u16 {
        match self {
            Broken::Protocol(_) => 1002,
            Broken::TooBig { .. } => 1009,
            Broken::Invalid(_) => 1007,
        }
    }

    /// The close reason sent to the client.
    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            Broken::Protocol(why) => why.clone(),
            Broken::TooBig { size, max } => {
                format!("message of {size} bytes exceeds the limit of {max}").into()
            }
            Broken::Invalid(why) => Cow::Borrowed(why),
        }
    }
}

/// A fragmented message whose last frame has not come yet.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
}

/// One connection's inbound frame state.
#[derive(Debug, Default)]
pub struct Reader {
    /// Bytes read but not yet parsed: empty (and unallocated, once
    /// [`Reader::release`] runs) between frames.
    buf: Vec<u8>,
    /// A message begun in fragments (rare: boxed).
    partial: Option<Box<Partial>>,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    deflate: bool,
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV23: u8 = 0x30;

/// A parsed frame header: flags, opcode, where the payload starts, its
/// length and mask.
struct Head {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    start: usize,
    len: usize,
    mask: [u8; 4],
}

fn broken(why: &'static str) -> Broken {
    Broken::Protocol(Cow::Borrowed(why))
}

/// Reads a frame header from `buf`: `Ok(None)` while it is incomplete.
fn head(buf: &[u8]) -> Result<Option<Head>, Broken> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & RSV23 != 0 {
        return Err(broken(
            "reserved bits set without an extension that defines them",
        ));
    }
    if b1 & 0x80 == 0 {
        return Err(broken("client frames must be masked"));
    }
    let (at, len) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (4, u16::from_be_bytes([b[0], b[1]]) as u64),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (10, u64::from_be_bytes(b.try_into().expect("8 bytes"))),
            None => return Ok(None),
        },
        n => (2, n as u64),
    };
    if len >> 63 != 0 {
        return Err(broken("frame length has its most significant bit set"));
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin: b0 & FIN != 0,
        rsv1: b0 & RSV1 != 0,
        opcode: b0 & 0x0f,
        start: at + 4,
        len: usize::try_from(len).unwrap_or(usize::MAX),
        mask: mask.try_into().expect("4 bytes"),
    }))
}

impl Reader {
    /// A reader for a session that begins with `rest` (bytes that came
    /// with the HTTP request head), with permessage-deflate if negotiated.
    pub fn new(rest: Vec<u8>, deflate: bool) -> Self {
        Reader {
            buf: rest,
            partial: None,
            deflate,
        }
    }

    /// Where the caller appends what it reads from the socket.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Frees the buffer when it holds nothing: an idle connection keeps no
    /// read buffer (the next read allocates one again).
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Bytes waiting for the rest of their frame.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next message or control frame the buffered bytes complete;
    /// `Ok(None)` when they end inside a frame (read more). A message over
    /// `max` bytes fails as soon as its header says so, before its payload
    /// is read; a compressed one also when it inflates past `max`.
    pub fn next(&mut self, max: usize) -> Result<Option<Got>, Broken> {
        loop {
            let Some(h) = head(&self.buf)? else {
                return Ok(None);
            };
            self.check(&h, max)?;
            let end = h.start.saturating_add(h.len);
            if self.buf.len() < end {
                return Ok(None);
            }
            let mut payload: Vec<u8> = self.buf[h.start..end].to_vec();
            unmask(&mut payload, h.mask);
            self.buf.drain(..end);
            if let Some(got) = self.take(h, payload, max)? {
                return Ok(Some(got));
            }
        }
    }

    /// What a frame's header alone shows wrong.
    fn check(&self, h: &Head, max: usize) -> Result<(), Broken> {
        let control = h.opcode & 0x8 != 0;
        if control {
            if !matches!(h.opcode, OP_CLOSE | OP_PING | OP_PONG) {
                return Err(broken("unknown control opcode"));
            }
            if !h.fin {
                return Err(broken("control frames must not be fragmented"));
            }
            if h.len > 125 {
                return Err(broken("control frame payload over 125 bytes"));
            }
            if h.rsv1 {
                return Err(broken("RSV1 set on a control frame"));
            }
            return Ok(());
        }
        match (h.opcode, &self.partial) {
            (OP_CONT, None) => {
                return Err(broken("continuation frame without a message to continue"))
            }
            (OP_TEXT | OP_BINARY, Some(_)) => {
                return Err(broken(
                    "new data frame while a fragmented message is incomplete",
                ))
            }
            (OP_CONT | OP_TEXT | OP_BINARY, _) => {}
            _ => return Err(broken("unknown data opcode")),
        }
        if h.rsv1 && (!self.deflate || h.opcode == OP_CONT) {
            return Err(broken(if self.deflate {
                "RSV1 set on a continuation frame"
            } else {
                "RSV1 set but permessage-deflate was not negotiated"
            }));
        }
        let so_far = self.partial.as_ref().map_or(0, |p| p.data.len());
        let size = so_far.saturating_add(h.len);
        if size > max {
            return Err(Broken::TooBig { size, max });
        }
        Ok(())
    }

    /// Takes one complete frame's unmasked payload; a message once its
    /// last frame is in.
    fn take(&mut self, h: Head, payload: Vec<u8>, max: usize) -> Result<Option<Got>, Broken> {
        match h.opcode {
            OP_PING => return Ok(Some(Got::Ping(payload))),
            OP_PONG => return Ok(Some(Got::Pong)),
            OP_CLOSE => return close_payload(&payload).map(|c| Some(Got::Close(c))),
            _ => {}
        }
        let mut p = match self.partial.take() {
            Some(mut p) => {
                p.data.extend_from_slice(&payload);
                p
            }
            None => Box::new(Partial {
                text: h.opcode == OP_TEXT,
                compressed: h.rsv1,
                data: payload,
            }),
        };
        if !h.fin {
            self.partial = Some(p);
            return Ok(None);
        }
        let data = if p.compressed {
            deflate::inflate(&p.data, max).map_err(|e| match e {
                deflate::Broken::TooBig { size, max } => Broken::TooBig { size, max },
                deflate::Broken::Invalid(why) => Broken::Invalid(why),
            })?
        } else {
            std::mem::take(&mut p.data)
        };
        if p.text && std::str::from_utf8(&data).is_err() {
            return Err(Broken::Invalid("text frame is not valid UTF-8"));
        }
        Ok(Some(Got::Data {
            text: p.text,
            payload: data,
        }))
    }
}

/// XORs `data` with the frame's mask, eight bytes at a time (a byte at a
/// time with `i & 3` ran at about one byte per cycle; a 1,024-topic
/// command is 40 KiB or more, and a client may send them without pause).
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("eight bytes")) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // The tail starts at a multiple of eight, so of four: the mask's phase
    // is 0 there.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A close frame's code and reason (RFC 6455 §5.5.1, §7.4): none, or a
/// code a peer may send and a UTF-8 reason.
fn close_payload(p: &[u8]) -> Result<Option<(u16, String)>, Broken> {
    match p.len() {
        0 => return Ok(None),
        1 => return Err(broken("close frame with a one-byte payload")),
        _ => {}
    }
    let code = u16::from_be_bytes([p[0], p[1]]);
    let allowed = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
    if !allowed {
        return Err(broken("close frame with a code a peer may not send"));
    }
    match std::str::from_utf8(&p[2..]) {
        Ok(reason) => Ok(Some((code, reason.to_owned()))),
        Err(_) => Err(Broken::Invalid("close reason is not valid UTF-8")),
    }
}

/// A server control frame (close, ping or pong): never masked, payload at
/// most 125 bytes (longer is cut).
pub fn control_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let p = &payload[..payload.len().min(125)];
    let mut f = Vec::with_capacity(2 + p.len());
    f.push(FIN | opcode);
    f.push(p.len() as u8);
    f.extend_from_slice(p);
    f
}

/// A close frame with `code` and `reason` (cut at a character boundary to
/// fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    control_frame(OP_CLOSE, &p)
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
