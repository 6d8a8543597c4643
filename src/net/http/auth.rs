//! Access tokens on the upgrade request: where a token is presented
//! (bearer header, or a percent-encoded `token` query parameter), a
//! comparison whose time does not tell how much of a token matched, and
//! which grant a token carries (a static token: everything; a JWT: its
//! claims).

use super::{HttpContext, Role};
use crate::access::jwt::{Kind, Verifier};
use crate::access::{fingerprint, Pass};

/// The presented token: the bearer header, else the `token` query parameter.
pub(crate) fn presented_token<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    full_path: &str,
) -> Option<String> {
    let from_header = header("Authorization").and_then(|v| {
        let v = v.trim();
        v.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| v[7..].trim())
    });
    let from_query = full_path
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(|t| percent_decode(t).unwrap_or_default());
    from_header.map(str::to_string).or(from_query)
}

/// Is `token` one of `allowed`? Compared against every token in constant
/// time per token, so timing reveals neither which nor how much matched.
pub(crate) fn static_match(token: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .fold(false, |ok, a| ok | ct_eq(a.as_bytes(), token.as_bytes()))
}

/// How the token on a request for `role`'s endpoint lets it in (`Open`: a
/// subscriber endpoint open to all); `Err(why)` to answer 401 with.
pub(super) fn authenticate<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    full_path: &str,
    ctx: &HttpContext<'_>,
    role: Role,
) -> Result<Pass, String> {
    let statics = match role {
        Role::Subscriber => ctx.subscriber_tokens,
        Role::Publisher => ctx.publisher_tokens,
    };
    if role == Role::Subscriber && statics.is_empty() && ctx.jwt.is_none() {
        return Ok(Pass::Open);
    }
    let required = match role {
        Role::Subscriber => {
            "a subscriber token is required (Authorization: Bearer <token>, or ?token=)"
        }
        Role::Publisher => {
            "a publisher token is required (Authorization: Bearer <token>, or ?token=)"
        }
    };
    let Some(token) = presented_token(header, full_path) else {
        return Err(required.into());
    };
    let unknown = match role {
        Role::Subscriber => "the token presented is not a subscriber token of this server",
        Role::Publisher => "the token presented is not a publisher token of this server",
    };
    grant_of(&token, statics, ctx.jwt, role).map_err(|why| why.unwrap_or(unknown.into()))
}

/// What `token` grants for `role`: `Pass::Static` for one of the static
/// tokens `statics` (no limits of its own), `Pass::Jwt` for a valid JWT of
/// that role. `Err(Some(why))`: a JWT that is not valid, or is for the
/// other role; `Err(None)`: not a token of this server for `role` at all.
/// The upgrade request and the `auth` command both ask this.
pub(crate) fn grant_of(
    token: &str,
    statics: &[String],
    jwt: Option<&Verifier>,
    role: Role,
) -> Result<Pass, Option<String>> {
    if static_match(token, statics) {
        return Ok(Pass::Static(fingerprint(token)));
    }
    let Some(v) = jwt.filter(|_| Verifier::looks_like(token)) else {
        return Err(None);
    };
    let (kind, grant) = v.verify(token).map_err(Some)?;
    match (kind, role) {
        (Kind::Subscriber, Role::Subscriber) | (Kind::Publisher, Role::Publisher) => {
            Ok(Pass::Jwt(Box::new(grant)))
        }
        (Kind::Publisher, _) => Err(Some(
            "a token with a publish claim opens only /publish".into(),
        )),
        (Kind::Subscriber, _) => Err(Some(
            "a token without a publish claim opens only /ws".into(),
        )),
    }
}

/// Compares in time that depends only on the presented token's length:
/// every byte of `presented` is compared (against `expected`, cycled), and a
/// length mismatch is folded into the result instead of returning early.
fn ct_eq(expected: &[u8], presented: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut diff = (expected.len() != presented.len()) as u8;
    for (i, p) in presented.iter().enumerate() {
        diff |= expected[i % expected.len()] ^ p;
    }
    diff == 0
}

/// Decodes `%XX` escapes and `+` of a query value; None when an escape is
/// malformed or the result is not UTF-8 (such a token matches nothing).
fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{status, ws_request, CTX};
    use super::super::{route, HttpContext};
    use super::*;

    #[test]
    fn query_tokens_are_percent_decoded() {
        let tokens = ["a+b/c=d&e".to_string()];
        let ctx = HttpContext {
            subscriber_tokens: &tokens,
            ..CTX
        };
        let encoded = ws_request(b"", "/ws?x=1&token=a%2Bb%2Fc%3Dd%26e");
        assert_eq!(status(&route(&encoded, ctx)), "upgrade");
        let raw = ws_request(b"", "/ws?token=a+b/c=d");
        assert_eq!(status(&route(&raw, ctx)), "HTTP/1.1 401");
        let broken = ws_request(b"", "/ws?token=%zz");
        assert_eq!(status(&route(&broken, ctx)), "HTTP/1.1 401");
    }

    #[test]
    fn token_comparison_covers_every_presented_byte() {
        assert!(ct_eq(b"secret-token", b"secret-token"));
        assert!(!ct_eq(b"secret-token", b"secret-toke"));
        assert!(!ct_eq(b"secret-token", b"secret-token-and-more"));
        assert!(!ct_eq(b"secret-token", b"secret-tokeX"));
        // A prefix repeated does not match a shorter token.
        assert!(!ct_eq(b"ab", b"abab"));
        assert!(!ct_eq(b"", b""));
    }
}
