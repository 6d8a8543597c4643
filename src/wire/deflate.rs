//! permessage-deflate (RFC 7692): the offer a client makes, the answer
//! tickcast gives, and the raw DEFLATE both ways.
//!
//! tickcast always answers with `server_no_context_takeover` and
//! `client_no_context_takeover`: every message is compressed on its own.
//! That is what lets one compressed frame go to every subscriber (shared
//! mode: no work and no memory per subscriber), and lets a shard inflate
//! any client's message with one decompressor of its own instead of a
//! 32 KiB window per connection. Clients read commands that are a few
//! dozen bytes: a window kept between them would save nothing.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// An offer tickcast accepts: what its answer must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The offer lets the server keep its window between messages (it has
    /// no `server_no_context_takeover`).
    pub server_keeps: bool,
    /// It has `server_max_window_bits` (15, the one value accepted), which
    /// an accepting answer must repeat (§7.1.2.1).
    pub server_window: bool,
}

impl Accepted {
    /// The `Sec-WebSocket-Extensions` answer: the server keeps no window
    /// (shared mode) unless `own_context`; the client never does.
    pub fn answer(self, own_context: bool) -> String {
        let mut a = String::from("permessage-deflate");
        if !own_context {
            a.push_str("; server_no_context_takeover");
        }
        a.push_str("; client_no_context_takeover");
        if self.server_window {
            a.push_str("; server_max_window_bits=15");
        }
        a
    }
}

/// The tail a sync flush ends with, which RFC 7692 §7.2.1 drops from a
/// compressed message (and §7.2.2 puts back before inflating).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// The first offer in the client's `Sec-WebSocket-Extensions` values that
/// is a permessage-deflate tickcast accepts (RFC 7692 §5, §7.1).
/// An offer with an unknown or repeated parameter, or a bad value, is
/// declined as §7.1 says, and the next one considered; one that asks the
/// server for a window under 32 KiB (`server_max_window_bits` < 15) is
/// declined too, since the compressor always uses the full window.
pub fn negotiate(values: &[&str]) -> Option<Accepted> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .find_map(|offer| match offer_ok(offer) {
            Some((true, accepted)) => Some(accepted),
            _ => None,
        })
}

/// `Some((true, _))`: acceptable; `Some((false, _))`: valid but declined;
/// `None`: not permessage-deflate or malformed.
fn offer_ok(offer: &str) -> Option<(bool, Accepted)> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen = [false; 4];
    let mut ok = true;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let which = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|p| p.eq_ignore_ascii_case(name))?;
        if std::mem::replace(&mut seen[which], true) {
            return None;
        }
        match (which, value) {
            (0 | 1, None) => {}
            (0 | 1, Some(_)) => return None,
            (2, Some(v)) => ok &= window_bits(v)? == 15,
            (2, None) => return None,
            (_, None) => {}
            (_, Some(v)) => {
                window_bits(v)?;
            }
        }
    }
    let accepted = Accepted {
        server_keeps: !seen[0],
        server_window: seen[2],
    };
    Some((ok, accepted))
}

/// A window size parameter's value: 8 to 15, no leading zero (§7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Why a compressed message was refused.
#[derive(Debug, PartialEq)]
pub enum Broken {
    /// It inflates past the limit (`size` is how far it got).
    TooBig { size: usize, max: usize },
    /// It is not DEFLATE data.
    Invalid(&'static str),
}

thread_local! {
    /// The shard's one decompressor, reset for every message (no context
    /// takeover): a window per connection would cost 32 KiB each.
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
    /// The thread's compressor, reset for every message.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// Inflates one compressed message (RFC 7692 §7.2.2) to at most `max`
/// bytes: a small message that would inflate past it fails with
/// [`Broken::TooBig`] as soon as it does, without inflating the rest.
pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, Broken> {
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(false);
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).clamp(64, max.max(64)));
        for input in [data, &TAIL[..]] {
            if inflate_some(&mut d, input, &mut out, max)? == Status::StreamEnd {
                break;
            }
        }
        Ok(out)
    })
}

/// Feeds `input` to `d`, growing `out` up to one byte past `max`.
fn inflate_some(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    max: usize,
) -> Result<Status, Broken> {
    loop {
        if out.len() > max {
            return Err(Broken::TooBig {
                size: out.len(),
                max,
            });
        }
        if out.len() == out.capacity() {
            // Room for one byte past `max`, to tell "exactly max" from over.
            out.reserve_exact((max + 1 - out.len()).min(out.len().max(64)));
        }
        let (was_in, was_out) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| Broken::Invalid("compressed message does not inflate"))?;
        let used = (d.total_in() - was_in) as usize;
        input = &input[used..];
        let room_left = out.len() < out.capacity();
        let stuck = used == 0 && d.total_out() == was_out;
        if status == Status::StreamEnd || (room_left && (input.is_empty() || stuck)) {
            if out.len() > max {
                continue;
            }
            return Ok(status);
        }
    }
}

/// Appends to `out` a final frame with RSV1 set and `opcode` whose payload
/// is `payload` compressed on its own (no context taken over), the sync
/// flush's tail dropped (RFC 7692 §7.2.1).
pub fn deflate_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    DEFLATE.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        compressed_frame(&mut c, opcode, payload, out);
    });
}

/// Compresses `payload` through `c` (sync flush) and appends the frame.
fn compressed_frame(c: &mut Compress, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(payload.len() / 2 + 64);
    let mut rest = payload;
    loop {
        if body.capacity() - body.len() < 64 {
            body.reserve(body.len().max(64));
        }
        let before = c.total_in();
        c.compress_vec(rest, &mut body, FlushCompress::Sync)
            .expect("deflate into a vector does not fail");
        rest = &rest[(c.total_in() - before) as usize..];
        if rest.is_empty() && body.len() < body.capacity() {
            break;
        }
    }
    if body.ends_with(&TAIL) {
        body.truncate(body.len() - TAIL.len());
    }
    if body.is_empty() {
        // An empty message compresses to one empty stored block (§7.2.3.6).
        body.push(0);
    }
    let mut head = [0u8; super::frame::MAX_HEADER];
    let at = super::frame::write_header_before(&mut head, opcode, body.len());
    head[at] |= 0x40;
    out.extend_from_slice(&head[at..]);
    out.extend_from_slice(&body);
}

/// What one [`Context`] costs: miniz_oxide's hash tables, window and
/// output buffer, measured at 272 KiB once it has compressed a message.
pub const CONTEXT_BYTES: usize = 272 * 1024;

/// How many per-connection contexts fit in `memory` bytes.
pub fn contexts_in(memory: usize) -> usize {
    memory / CONTEXT_BYTES
}

/// A connection's own compressor (per-connection mode, negotiated without
/// `server_no_context_takeover`): its window carries over from message to
/// message, so each event compresses against the ones before it. Work and
/// [`CONTEXT_BYTES`] of memory per connection: opt-in, within a budget.
pub struct Context(Compress);

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Context")
    }
}

impl Default for Context {
    fn default() -> Self {
        Context(Compress::new(Compression::fast(), false))
    }
}

impl Context {
    /// Appends `payload` as one compressed frame of `opcode`.
    pub fn frame(&mut self, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
        compressed_frame(&mut self.0, opcode, payload, out);
    }
}

/// One of our frames (final, unmasked, not compressed) as a
/// permessage-deflate frame of the same opcode, if that is shorter.
pub fn deflate_ours(frame: &[u8]) -> Option<Vec<u8>> {
    let payload = super::frame::payload_of(frame)?;
    let mut out = Vec::with_capacity(frame.len());
    deflate_frame(frame[0] & 0x0f, payload, &mut out);
    (out.len() < frame.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        negotiate(values).is_some()
    }

    #[test]
    fn an_offer_says_whether_the_server_may_keep_its_window() {
        let keeps = |v: &str| negotiate(&[v]).map(|a| a.server_keeps);
        assert_eq!(
            keeps("permessage-deflate; client_max_window_bits"),
            Some(true)
        );
        assert_eq!(
            keeps("permessage-deflate; server_no_context_takeover"),
            Some(false)
        );
        // An accepted server_max_window_bits is repeated in the answer.
        let a = negotiate(&["permessage-deflate; server_max_window_bits=15"]).unwrap();
        assert_eq!(
            a.answer(false),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=15"
        );
        let plain = negotiate(&["permessage-deflate"]).unwrap();
        assert_eq!(
            plain.answer(true),
            "permessage-deflate; client_no_context_takeover"
        );
        assert_eq!(negotiate(&["permessage-deflate; foo"]), None);
    }

    #[test]
    fn accepts_what_browsers_offer_and_declines_malformed_offers() {
        assert!(accepts(&["permessage-deflate; client_max_window_bits"]));
        assert!(accepts(&["permessage-deflate"]));
        assert!(accepts(&["permessage-deflate; server_max_window_bits=15"]));
        assert!(accepts(&[
            "permessage-deflate; client_max_window_bits=\"10\""
        ]));
        // Unknown parameter, repeated parameter, bad values: declined.
        assert!(!accepts(&["permessage-deflate; foo"]));
        assert!(!accepts(&[
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover"
        ]));
        assert!(!accepts(&["permessage-deflate; server_max_window_bits"]));
        assert!(!accepts(&["permessage-deflate; server_max_window_bits=16"]));
        assert!(!accepts(&["permessage-deflate; client_max_window_bits=08"]));
        assert!(!accepts(&[
            "permessage-deflate; server_no_context_takeover=1"
        ]));
        // A smaller server window is valid but not offered by this server.
        assert!(!accepts(&["permessage-deflate; server_max_window_bits=10"]));
        // ... and the next offer in the list is considered.
        assert!(accepts(&[
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ]));
        assert!(accepts(&["x-webkit-deflate-frame", "permessage-deflate"]));
        assert!(!accepts(&["x-webkit-deflate-frame"]));
        assert!(!accepts(&[]));
    }

    fn payload_of(frame: &[u8]) -> &[u8] {
        crate::wire::frame::payload_of(frame).expect("one whole frame")
    }

    #[test]
    fn a_deflated_frame_inflates_to_its_payload() {
        for size in [0usize, 1, 100, 5_000, 200_000] {
            let text: Vec<u8> = (0..size).map(|i| b"{\"bid\":101.25,}"[i % 15]).collect();
            let mut f = Vec::new();
            deflate_frame(0x1, &text, &mut f);
            assert_eq!(f[0], 0x80 | 0x40 | 0x1, "final, RSV1, text");
            let body = payload_of(&f);
            assert!(!body.ends_with(&TAIL));
            assert_eq!(inflate(body, 1 << 20).unwrap(), text, "size {size}");
            if size >= 5_000 {
                assert!(body.len() * 10 < size, "repetitive text compresses");
            }
        }
    }

    #[test]
    fn a_context_carries_its_window_from_message_to_message() {
        let event =
            b"{\"event\":\"update\",\"topic\":\"AAPL\",\"seq\":17,\"bid\":101.25,\"ask\":101.5}";
        let mut ctx = Context::default();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        ctx.frame(0x1, event, &mut first);
        ctx.frame(0x1, event, &mut second);
        assert!(
            second.len() * 3 < first.len(),
            "{} then {}",
            first.len(),
            second.len()
        );
        // A client's one inflater, kept across messages, reads both.
        let mut d = Decompress::new(false);
        for f in [&first, &second] {
            let mut input = payload_of(f).to_vec();
            input.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(256);
            d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, event);
        }
    }

    #[test]
    fn inflating_past_the_limit_fails_early() {
        let big = vec![b'a'; 10_000_000];
        let mut f = Vec::new();
        deflate_frame(0x2, &big, &mut f);
        let body = payload_of(&f).to_vec();
        assert!(body.len() < 100_000, "a bomb is small: {}", body.len());
        match inflate(&body, 65_536) {
            Err(Broken::TooBig { size, max }) => {
                assert_eq!(max, 65_536);
                assert!(size > 65_536 && size < 200_000, "stopped early: {size}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(inflate(&body, 10_000_000).unwrap().len(), 10_000_000);
        assert_eq!(
            inflate(b"\xff\xff\xff\xff", 1000),
            Err(Broken::Invalid("compressed message does not inflate"))
        );
    }
}
