//! Routing of request heads: upgrades, refusals, origins, tokens.

use super::*;

pub(super) const CTX: HttpContext<'static> = HttpContext {
    fields: &[],
    deflate: true,
    deflate_min: 256,
    deflate_context: false,
    max_head: 8192,
    shutting_down: false,
    subscriber_tokens: &[],
    publisher_tokens: &[],
    jwt: None,
    admin_tokens: &[],
    protect_metrics: false,
    allowed_origins: &[],
    max_topic_len: 64,
    full: false,
    degraded: false,
    failed: false,
};
pub(super) fn status(r: &Route) -> String {
    match r {
        Route::Respond(b) => String::from_utf8_lossy(&b[..12]).into_owned(),
        Route::Upgrade { .. } => "upgrade".into(),
        Route::Metrics => "metrics".into(),
        Route::Admin(_) => "admin".into(),
        Route::Partial => "partial".into(),
    }
}

#[test]
fn upgrade_picks_subprotocol_and_derives_accept() {
    let req =
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: foo, tickcast.msgpack\r\n\r\nXX";
    match route(req, CTX) {
        Route::Upgrade {
            response,
            format,
            consumed,
            ..
        } => {
            let text = String::from_utf8(response).unwrap();
            assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
            assert!(text.contains("Sec-WebSocket-Protocol: tickcast.msgpack"));
            assert_eq!(format, Format::MsgPack);
            assert_eq!(consumed, req.len() - 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_requests_get_clear_statuses() {
    assert_eq!(status(&route(b"GET /ws HTT", CTX)), "partial");
    assert_eq!(
        status(&route(b"GET /ws HTTP/1.1\r\n\r\n", CTX)),
        "HTTP/1.1 426"
    );
    assert_eq!(
        status(&route(b"GET /nope HTTP/1.1\r\n\r\n", CTX)),
        "HTTP/1.1 404"
    );
    assert_eq!(
        status(&route(b"POST /ws HTTP/1.1\r\n\r\n", CTX)),
        "HTTP/1.1 405"
    );
    assert_eq!(
        status(&route(b"\x16\x03\x01garbage\r\n\r\n", CTX)),
        "HTTP/1.1 400"
    );
    assert_eq!(
        status(&route(b"GET /healthz HTTP/1.1\r\n\r\n", CTX)),
        "HTTP/1.1 200"
    );
    // Shutting down, or a server thread died of a bug: 503.
    let down = HttpContext {
        shutting_down: true,
        ..CTX
    };
    let failed = HttpContext {
        failed: true,
        ..CTX
    };
    for ctx in [down, failed] {
        assert_eq!(
            status(&route(b"GET /healthz HTTP/1.1\r\n\r\n", ctx)),
            "HTTP/1.1 503"
        );
    }
    // A head that never ends is cut off at the limit.
    let big = vec![b'a'; 9000];
    assert_eq!(status(&route(&big, CTX)), "HTTP/1.1 431");
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.extend(vec![b'a'; 9000]);
    assert_eq!(status(&route(&long, CTX)), "HTTP/1.1 431");
}

pub(super) fn ws_request(extra: &[u8], path: &str) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    .into_bytes();
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn an_origin_allowlist_refuses_bad_and_doubled_origins() {
    let allowed = ["https://ok.example".to_string()];
    let ctx = HttpContext {
        allowed_origins: &allowed,
        ..CTX
    };
    let ok = ws_request(b"Origin: https://ok.example\r\n", "/ws");
    assert_eq!(status(&route(&ok, ctx)), "upgrade");
    let none = ws_request(b"", "/ws");
    assert_eq!(status(&route(&none, ctx)), "upgrade", "non-browser clients");
    let other = ws_request(b"Origin: https://evil.example\r\n", "/ws");
    assert_eq!(status(&route(&other, ctx)), "HTTP/1.1 403");
    let not_utf8 = ws_request(b"Origin: https://ok.example\xff\r\n", "/ws");
    assert_eq!(status(&route(&not_utf8, ctx)), "HTTP/1.1 403");
    let two = ws_request(
        b"Origin: https://ok.example\r\nOrigin: https://evil.example\r\n",
        "/ws",
    );
    assert_eq!(status(&route(&two, ctx)), "HTTP/1.1 400");
}
