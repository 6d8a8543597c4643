//! The operator endpoints' routing: the admin token (also on `/metrics`
//! when it is protected) and which request an `/admin/…` path is.

use super::{auth, response, response_with, unauthorized, HttpContext, Route};
use crate::net::http::status::Status;

/// For `/admin/…` (and `/metrics` when protected): the refusal, or the
/// admin request. None: not an admin path, route as usual (a protected
/// `/metrics` with a valid token also goes on as usual).
pub(super) fn route<'h>(
    method: &str,
    path: &str,
    full_path: &str,
    header: &dyn Fn(&str) -> Option<&'h str>,
    ctx: &HttpContext<'_>,
) -> Option<Route> {
    if !(path.starts_with("/admin/") || (path == "/metrics" && ctx.protect_metrics)) {
        return None;
    }
    if ctx.admin_tokens.is_empty() {
        return Some(Route::Respond(response(
            Status::Forbidden,
            "the admin API is off: no admin tokens are configured\n",
        )));
    }
    let token = auth::presented_token(header, full_path);
    if !token.is_some_and(|t| auth::static_match(&t, ctx.admin_tokens)) {
        return Some(unauthorized(
            "an admin token is required (Authorization: Bearer <token>)",
        ));
    }
    if path != "/metrics" {
        return Some(admin_route(method, path));
    }
    None
}

/// What an operator asks for: `GET /admin/connections`, `GET
/// /admin/topics`, `POST /admin/connections/{id}/close`, or `POST
/// /admin/reload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminRequest {
    Connections,
    Topics,
    Close(u64),
    Reload,
}

fn admin_route(method: &str, path: &str) -> Route {
    let close = path
        .strip_prefix("/admin/connections/")
        .and_then(|r| r.strip_suffix("/close"));
    let (want, request) = match (path, close) {
        ("/admin/connections", _) => ("GET", Some(AdminRequest::Connections)),
        ("/admin/topics", _) => ("GET", Some(AdminRequest::Topics)),
        ("/admin/reload", _) => ("POST", Some(AdminRequest::Reload)),
        (_, Some(id)) => match id.parse() {
            Ok(id) => ("POST", Some(AdminRequest::Close(id))),
            Err(_) => {
                let why = "a connection id is a number (see GET /admin/connections)\n";
                return Route::Respond(response(Status::BadRequest, why));
            }
        },
        _ => return Route::Respond(response(Status::NotFound, "no such admin endpoint\n")),
    };
    if method != want {
        let allow = format!("Allow: {want}\r\n");
        let why = format!("use {want} here\n");
        return Route::Respond(response_with(Status::MethodNotAllowed, &why, &allow));
    }
    request.map_or(Route::Metrics, Route::Admin)
}
