//! The bodies of the fuzz targets in fuzz/, kept in the library so the seed
//! corpus is also replayed by the ordinary test suite (tests/fuzz_corpus.rs).
//! Each checks that untrusted bytes never panic and that what comes out obeys
//! the invariants the server relies on.

use crate::engine::selector::Selector;
use crate::model::format::Format;
use crate::net::http::{self, HttpContext, Route};
use crate::wire::command::{self, Op};
use crate::wire::publish;

/// Client command parsing (JSON and MessagePack), publish-frame decoding, and
/// topic selector parsing.
pub fn command_parser(data: &[u8]) {
    for enc in [Format::Json, Format::MsgPack] {
        if let Ok(cmd) = command::parse(data, enc) {
            let list = match &cmd.op {
                Op::Subscribe(sub) => Some(&sub.topics),
                Op::Unsubscribe(list) => Some(list),
                _ => None,
            };
            if let Some(list) = list {
                assert!(!list.is_empty(), "parse accepted an empty topic list");
                for t in list {
                    if let Ok(sel) = Selector::parse(t, 64) {
                        // A parsed selector round-trips through its text.
                        assert_eq!(Selector::parse(&sel.text(), 64).as_ref(), Ok(&sel));
                    }
                }
            }
        }
    }
    if let Ok(items) = publish::decode(data) {
        // Decoding is lossless: re-encoding and decoding gives the same updates
        // (NaN aside, which never equals itself and is refused later anyway).
        let updates: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                publish::Item::Update(u) => Some(u.clone()),
                publish::Item::Clear(_) => None,
            })
            .collect();
        if updates.len() == items.len() && updates.iter().all(|u| u.prices.check_finite().is_ok()) {
            let again: Vec<_> = updates.iter().cloned().map(publish::Item::Update).collect();
            assert_eq!(publish::decode(&publish::encode(&updates)).unwrap(), again);
        }
    }
}

/// The HTTP request head parser and router in front of every connection.
pub fn http_upgrade(data: &[u8]) {
    let tokens = ["subscriber-token".to_string()];
    let publishers = ["publisher-token".to_string()];
    let origins = ["https://ok.example".to_string()];
    let fields = ["open_interest".to_string()];
    // Tokens of JWT shape in the input reach the JWT decoder.
    let verifier = crate::access::jwt::Verifier::with_secret(b"fuzzing secret, 16+ bytes", 64);
    for shutting_down in [false, true] {
        let ctx = HttpContext {
            max_head: 8192,
            shutting_down,
            subscriber_tokens: &tokens,
            publisher_tokens: &publishers,
            jwt: Some(&verifier),
            admin_tokens: &publishers,
            protect_metrics: shutting_down,
            allowed_origins: &origins,
            max_topic_len: 64,
            fields: &fields,
            deflate: true,
            deflate_min: 256,
            deflate_context: false,
            full: false,
            degraded: shutting_down,
            failed: false,
        };
        match http::route(data, ctx) {
            Route::Upgrade {
                response, consumed, ..
            } => {
                assert!(!shutting_down, "upgraded while shutting down");
                assert!(consumed <= data.len());
                assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
                assert!(response.ends_with(b"\r\n\r\n"));
            }
            Route::Admin(_) => assert!(data.windows(7).any(|w| w == b"/admin/")),
            Route::Respond(resp) => {
                assert!(resp.starts_with(b"HTTP/1.1 "));
                let text = String::from_utf8_lossy(&resp);
                assert!(text.contains("\r\nConnection: close\r\n"));
            }
            Route::Partial => assert!(data.len() < 8192, "partial beyond the head limit"),
            Route::Metrics => {}
        }
    }
}

/// Client frames from untrusted bytes, with and without permessage-deflate:
/// the reader never panics, never gives back a message over the limit (a
/// compressed one included), and every text message it gives is UTF-8.
pub fn client_frames(data: &[u8]) {
    const MAX: usize = 4096;
    for deflate in [false, true] {
        // Whole, then split at an input-chosen point: a frame may arrive in pieces.
        let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
        let mut r = crate::wire::inbound::Reader::new(Vec::new(), deflate);
        for piece in [&data[..cut], &data[cut..]] {
            r.buffer().extend_from_slice(piece);
            loop {
                match r.next(MAX) {
                    Ok(Some(crate::wire::inbound::Got::Data { text, payload })) => {
                        assert!(payload.len() <= MAX, "a message over the limit");
                        assert!(!text || std::str::from_utf8(&payload).is_ok());
                    }
                    Ok(Some(crate::wire::inbound::Got::Ping(p))) => assert!(p.len() <= 125),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert!(matches!(e.code(), 1002 | 1007 | 1009));
                        break;
                    }
                }
            }
        }
    }
}
