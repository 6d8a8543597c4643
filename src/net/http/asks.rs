//! What a session's request asks for beyond the upgrade itself: compression
//! (`Sec-WebSocket-Extensions`), a byte budget, what a publisher's topics
//! become when it leaves.

use super::HttpContext;
use crate::wire::deflate;

/// Whether permessage-deflate is accepted, and with a window of the
/// server's own (per-connection mode), from every value of every
/// `Sec-WebSocket-Extensions` line (RFC 6455 §9.1).
pub(super) fn deflate(
    headers: &[httparse::Header<'_>],
    ctx: &HttpContext<'_>,
) -> Option<(deflate::Accepted, bool)> {
    let offers: Vec<&str> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect();
    let accepted = ctx.deflate.then(|| deflate::negotiate(&offers)).flatten()?;
    Some((accepted, accepted.server_keeps && ctx.deflate_context))
}

/// The byte budget a subscriber asks for (`?max_bytes_per_sec=N`): a
/// whole number of bytes per second, at least 1; it can only lower the
/// server's and its token's.
pub(super) fn byte_budget_asked(full_path: &str) -> Result<Option<u64>, String> {
    let asked = full_path.split_once('?').and_then(|(_, q)| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("max_bytes_per_sec="))
    });
    match asked.map(|v| v.parse::<u64>()) {
        None => Ok(None),
        Some(Ok(b)) if b > 0 => Ok(Some(b)),
        Some(_) => {
            Err("max_bytes_per_sec must be a whole number of bytes per second, at least 1\n".into())
        }
    }
}

/// What a publisher asks for its topics when it goes away: `stale` (the
/// default: subscribers learn the feed is gone) or `keep` (they stay live;
/// for one-shot publishers). From `?on_leave=` or `Tickcast-On-Leave:`.
pub(super) fn on_leave<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    full_path: &str,
) -> Result<bool, String> {
    let from_query = full_path
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("on_leave=")));
    match from_query
        .or_else(|| header(crate::wire::publish::ON_LEAVE_HEADER))
        .map(str::trim)
    {
        None | Some("stale") => Ok(false),
        Some("keep") => Ok(true),
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            Err(format!(
                "on_leave must be \"stale\" or \"keep\", not {shown:?}\n"
            ))
        }
    }
}
