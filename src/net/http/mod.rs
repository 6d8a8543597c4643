//! The HTTP/1.1 side of the one listening port: the WebSocket upgrade on `/ws`,
//! `/healthz`, a landing page, and clear status codes for everything else.
//!
//! We parse the request head ourselves (httparse) instead of letting tungstenite
//! run the server handshake, because the same port must answer plain HTTP
//! requests with real responses; tungstenite only refuses what is not an upgrade.
//! The accept key is still derived by tungstenite.

mod admin;
mod asks;
pub(crate) mod auth;
pub(crate) mod status;

use crate::access::jwt::Verifier;
use crate::access::Pass;
use crate::model::format::Format;
use crate::wire::deflate;
pub(crate) use admin::AdminRequest;
use asks::{byte_budget_asked, on_leave};
use auth::authenticate;
use status::Status;
use tungstenite::handshake::derive_accept_key;

/// Most request headers we read; more get 431.
const MAX_HEADERS: usize = 32;

/// What an upgraded connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `/ws`: receives market data.
    Subscriber,
    /// `/publish`: a feed handler in another process sending updates.
    Publisher,
}

/// What to do with the bytes read so far on a fresh connection.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// The request head is not complete yet.
    Partial,
    /// A valid WebSocket upgrade on `/ws`: send `response`, then speak WebSocket
    /// in `format`. Bytes after `consumed` already belong to the WebSocket stream.
    Upgrade {
        /// The `101 Switching Protocols` response.
        response: Vec<u8>,
        /// The negotiated encoding.
        format: Format,
        /// Subscriber or publisher.
        role: Role,
        /// How it got in: what its JWT allows, or which static token.
        pass: Pass,
        /// A publisher that asked (`?on_leave=keep`) that its topics stay
        /// live when it disconnects: a one-shot publisher, a cron job.
        keep_live: bool,
        /// permessage-deflate was offered and accepted (RFC 7692): the
        /// client may send compressed messages, and may be sent them.
        deflate: bool,
        /// ... with a compression context of its own (per-connection mode).
        own_context: bool,
        /// A batch session: the events of one flush go out as one message.
        batch: bool,
        /// The byte budget the client asked for (`?max_bytes_per_sec=`).
        budget: Option<u64>,
        /// Length of the request head.
        consumed: usize,
    },
    /// Send this response and close the connection.
    Respond(Vec<u8>),
    /// An operator's request, with a valid admin token: the shard asks
    /// every shard, then answers.
    Admin(AdminRequest),
    /// `GET /metrics`: the caller renders the metrics (it holds them), then closes.
    Metrics,
}

/// Server state that changes how requests are answered.
#[derive(Debug, Clone, Copy)]
pub struct HttpContext<'a> {
    /// Request heads longer than this get 431.
    pub max_head: usize,
    /// While shutting down, `/healthz` says 503 and upgrades are refused.
    pub shutting_down: bool,
    /// When not empty, `/ws` requires one of these tokens.
    pub subscriber_tokens: &'a [String],
    /// `/publish` requires one of these; when empty, network publishing is off.
    pub publisher_tokens: &'a [String],
    /// Verifies JWTs, when they are accepted.
    pub jwt: Option<&'a Verifier>,
    /// Tokens of the operator endpoints; empty: they are off.
    pub admin_tokens: &'a [String],
    /// `/metrics` needs an admin token.
    pub protect_metrics: bool,
    /// Browser origins allowed to upgrade; empty: any.
    pub allowed_origins: &'a [String],
    /// Announced to publishers in the `101` response.
    pub max_topic_len: usize,
    /// The server's extra fields, announced to publishers likewise.
    pub fields: &'a [String],
    /// permessage-deflate is on (`compression`): offers are accepted.
    pub deflate: bool,
    /// Batches at least this long go compressed (`deflate_min_bytes`).
    pub deflate_min: usize,
    /// A per-connection compression context may be had now.
    pub deflate_context: bool,
    /// The server is at `max_connections`: upgrades get 503, plain requests
    /// (`/healthz`, `/metrics`) are still answered.
    pub full: bool,
    /// Cluster mode with the link to Redis down: `/healthz` says degraded.
    pub degraded: bool,
    /// A shard or the router died of a bug: `/healthz` says 503.
    pub failed: bool,
}

/// Decides what a request head asks for. Never panics on any input.
pub fn route(buf: &[u8], ctx: HttpContext<'_>) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let too_large = || respond(Status::HeadersTooLarge, "request head too large\n");
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > ctx.max_head => return too_large(),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= ctx.max_head => return too_large(),
        Ok(httparse::Status::Partial) => return Route::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return respond(Status::HeadersTooLarge, "too many request headers\n")
        }
        Err(e) => {
            let why = format!("malformed HTTP request: {e}\n");
            return respond(Status::BadRequest, &why);
        }
    };
    let method = req.method.unwrap_or("");
    let full_path = req.path.unwrap_or("/");
    let path = full_path.split('?').next().unwrap_or("/");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };

    if let Some(refused) = check_origin(&req.headers[..], path, &ctx) {
        return refused;
    }
    if let Some(route) = admin::route(method, path, full_path, &header, &ctx) {
        return route;
    }
    if method != "GET" {
        return Route::Respond(response_with(
            Status::MethodNotAllowed,
            "only GET is supported\n",
            "Allow: GET\r\n",
        ));
    }
    let deflate = asks::deflate(req.headers, &ctx);
    if ctx.full && matches!(path, "/ws" | "/publish") {
        return respond(Status::ServiceUnavailable, "connection limit reached\n");
    }
    match path {
        "/ws" => session(
            &header,
            full_path,
            consumed,
            Role::Subscriber,
            &ctx,
            deflate,
        ),
        "/publish" => session(&header, full_path, consumed, Role::Publisher, &ctx, deflate),
        "/healthz" => healthz(&ctx),
        "/metrics" => Route::Metrics,
        "/" | "/index.html" => Route::Respond(response_typed(
            Status::Ok,
            "text/html; charset=utf-8",
            DASHBOARD,
            "",
        )),
        "/tickcast-client.js" => Route::Respond(response_typed(
            Status::Ok,
            "text/javascript; charset=utf-8",
            CLIENT_JS,
            "",
        )),
        _ => respond(Status::NotFound, "not found\n"),
    }
}

fn respond(status: Status, body: &str) -> Route {
    Route::Respond(response(status, body))
}

/// Cross-site WebSocket hijacking: a page on another site must not ride on
/// a user's access. Only browsers send Origin; other clients are not
/// affected. An Origin that is not UTF-8 is not allowed (it is not absent),
/// and two of them are refused: which one a proxy would act on is unclear.
fn check_origin(
    headers: &[httparse::Header<'_>],
    path: &str,
    ctx: &HttpContext<'_>,
) -> Option<Route> {
    if ctx.allowed_origins.is_empty() || !matches!(path, "/ws" | "/publish") {
        return None;
    }
    let mut origins = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Origin"));
    let first = origins.next()?;
    if origins.next().is_some() {
        return Some(respond(Status::BadRequest, "more than one Origin header\n"));
    }
    let allowed = std::str::from_utf8(first.value).is_ok_and(|origin| {
        ctx.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin.trim()))
    });
    (!allowed).then(|| respond(Status::Forbidden, "origin not allowed\n"))
}

/// `/ws` or `/publish`: authenticated, upgraded.
fn session<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    full_path: &str,
    consumed: usize,
    role: Role,
    ctx: &HttpContext<'_>,
    deflate: Option<(deflate::Accepted, bool)>,
) -> Route {
    if ctx.shutting_down {
        return respond(Status::ServiceUnavailable, "server is shutting down\n");
    }
    if role == Role::Publisher && ctx.publisher_tokens.is_empty() && ctx.jwt.is_none() {
        return respond(
            Status::Forbidden,
            "network publishing is disabled: no publisher tokens are configured\n",
        );
    }
    let keep_live = match (role, on_leave(header, full_path)) {
        (Role::Publisher, Ok(keep)) => keep,
        (Role::Publisher, Err(why)) => return respond(Status::BadRequest, &why),
        (Role::Subscriber, _) => false,
    };
    let budget = match byte_budget_asked(full_path) {
        Ok(b) => b,
        Err(why) => return respond(Status::BadRequest, &why),
    };
    match authenticate(header, full_path, ctx, role) {
        Ok(_) if role == Role::Publisher && budget.is_some() => respond(
            Status::BadRequest,
            "max_bytes_per_sec is for subscribers (/ws)\n",
        ),
        Ok(pass) => {
            let asks = Asks {
                keep_live,
                deflate,
                budget,
            };
            upgrade(header, consumed, role, pass, ctx, asks)
        }
        Err(why) => unauthorized(&why),
    }
}

fn healthz(ctx: &HttpContext<'_>) -> Route {
    if ctx.failed {
        let why = "failed: a server thread died of a bug (see the log); restart it\n";
        respond(Status::ServiceUnavailable, why)
    } else if ctx.shutting_down {
        respond(Status::ServiceUnavailable, "shutting down\n")
    } else if ctx.degraded {
        // Still serving the values it holds: a load balancer keeps it
        // (every node is degraded alike when Redis is down).
        let why = "degraded: the cluster link to Redis is down; serving the last values held\n";
        respond(Status::Ok, why)
    } else {
        respond(Status::Ok, "ok\n")
    }
}

/// The format a `Sec-WebSocket-Protocol` list asks for, and whether it
/// asks for batches (`tickcast.json+batch`, `tickcast.msgpack+batch`), or
/// the answer when it offers none of ours.
fn subprotocol(list: &str) -> Result<(Format, bool), Route> {
    list.split(',')
        .map(str::trim)
        .find_map(|name| match name.strip_suffix("+batch") {
            Some(base) => Format::from_subprotocol(base).map(|f| (f, true)),
            None => Format::from_subprotocol(name).map(|f| (f, false)),
        })
        .ok_or_else(|| {
            respond(
                Status::BadRequest,
                "no supported subprotocol offered; use tickcast.json or tickcast.msgpack \
                 (+batch for several events per message)\n",
            )
        })
}

/// What a publisher learns in its `101`: the topic length limit, the
/// server's extra fields, and its token's publish scope. The remote
/// publisher checks topics against these before it sends them.
fn publisher_headers(resp: &mut String, pass: &Pass, ctx: &HttpContext<'_>) {
    use crate::wire::publish::{FIELDS_HEADER, MAX_TOPIC_LEN_HEADER, PUBLISH_SCOPE_HEADER};
    resp.push_str(&format!(
        "{MAX_TOPIC_LEN_HEADER}: {}\r\n",
        ctx.max_topic_len
    ));
    if !ctx.fields.is_empty() {
        resp.push_str(&format!("{FIELDS_HEADER}: {}\r\n", ctx.fields.join(",")));
    }
    let grant = match pass {
        Pass::Jwt(g) => Some(g),
        _ => None,
    };
    if let Some(scope) = grant.and_then(|g| g.publish.as_ref()) {
        resp.push_str(&format!("{PUBLISH_SCOPE_HEADER}: {}\r\n", scope.to_list()));
    }
}

fn unauthorized(why: &str) -> Route {
    Route::Respond(response_with(
        Status::Unauthorized,
        &format!("{why}\n"),
        "WWW-Authenticate: Bearer realm=\"tickcast\"\r\n",
    ))
}

/// What a session's request asked for beyond the upgrade itself.
struct Asks {
    keep_live: bool,
    /// permessage-deflate accepted (and with a context of its own).
    deflate: Option<(deflate::Accepted, bool)>,
    budget: Option<u64>,
}

fn upgrade<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    consumed: usize,
    role: Role,
    pass: Pass,
    ctx: &HttpContext<'_>,
    asks: Asks,
) -> Route {
    let Asks {
        keep_live,
        deflate: accepted,
        budget,
    } = asks;
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Route::Respond(response_with(
            Status::UpgradeRequired,
            "this endpoint speaks WebSocket only (Upgrade: websocket)\n",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ));
    }
    if header("Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Route::Respond(response_with(
            Status::UpgradeRequired,
            "unsupported WebSocket version; use 13\n",
            "Sec-WebSocket-Version: 13\r\n",
        ));
    }
    let Some(key) = header("Sec-WebSocket-Key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return Route::Respond(response(Status::BadRequest, "missing Sec-WebSocket-Key\n"));
    };
    let (format, batch) = match header("Sec-WebSocket-Protocol").map(subprotocol) {
        None => (None, false),
        Some(Ok((chosen, batch))) => (Some(chosen), batch && role == Role::Subscriber),
        Some(Err(refused)) => return refused,
    };
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if role == Role::Publisher {
        publisher_headers(&mut resp, &pass, ctx);
    }
    if let Some(f) = format {
        resp.push_str("Sec-WebSocket-Protocol: ");
        resp.push_str(f.subprotocol());
        resp.push_str(if batch { "+batch\r\n" } else { "\r\n" });
    }
    let (deflate, own_context) = match accepted {
        Some((offer, own)) => {
            resp.push_str("Sec-WebSocket-Extensions: ");
            resp.push_str(&offer.answer(own));
            resp.push_str("\r\n");
            (true, own)
        }
        None => (false, false),
    };
    resp.push_str("\r\n");
    Route::Upgrade {
        response: resp.into_bytes(),
        // Publishers always speak MessagePack.
        format: match role {
            Role::Subscriber => format.unwrap_or(Format::Json),
            Role::Publisher => Format::MsgPack,
        },
        role,
        pass,
        keep_live,
        deflate,
        own_context,
        batch,
        budget,
        consumed,
    }
}

/// A complete plain-text response that closes the connection.
pub fn response(status: Status, body: &str) -> Vec<u8> {
    response_typed(status, "text/plain; charset=utf-8", body, "")
}

fn response_with(status: Status, body: &str, extra: &str) -> Vec<u8> {
    response_typed(status, "text/plain; charset=utf-8", body, extra)
}

/// A complete response with a content type and extra header lines (each ending in CRLF).
pub fn response_typed(status: Status, content_type: &str, body: &str, extra: &str) -> Vec<u8> {
    let (code, reason) = (status.code(), status.reason());
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The live dashboard: one self-contained page (HTML, CSS and JS inline, no
/// CDN), compiled into the binary.
const DASHBOARD: &str = include_str!("../../dashboard.html");

/// The JavaScript client (clients/js), which the dashboard imports and any
/// page may: `import { Client } from "http://host:port/tickcast-client.js"`.
const CLIENT_JS: &str = include_str!("../../../clients/js/src/index.js");

/// The response to `GET /metrics`.
pub fn metrics_response(body: &str) -> Vec<u8> {
    response_typed(
        Status::Ok,
        "text/plain; version=0.0.4; charset=utf-8",
        body,
        "",
    )
}

#[cfg(test)]
pub(super) mod tests;
