//! The HTTP statuses the server answers with: one type yields the code and
//! its reason phrase, so no response spells them by hand.

/// An HTTP status this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200.
    Ok,
    /// 400: the request is malformed, or the settings were refused.
    BadRequest,
    /// 401: no token, or a bad one.
    Unauthorized,
    /// 403: the token or origin does not allow this.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: the request head did not arrive in time.
    RequestTimeout,
    /// 426: a plain request where only an upgrade is served.
    UpgradeRequired,
    /// 431: the request head is too large.
    HeadersTooLarge,
    /// 503: out of connections or descriptors, or an answer did not come.
    ServiceUnavailable,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::UpgradeRequired => 426,
            Status::HeadersTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The reason phrase (RFC 9110's).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::UpgradeRequired => "Upgrade Required",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn each_status_has_its_own_code_and_the_standard_reason() {
        let all = [
            Status::Ok,
            Status::BadRequest,
            Status::Unauthorized,
            Status::Forbidden,
            Status::NotFound,
            Status::MethodNotAllowed,
            Status::RequestTimeout,
            Status::UpgradeRequired,
            Status::HeadersTooLarge,
            Status::ServiceUnavailable,
        ];
        let mut codes: Vec<u16> = all.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(Status::HeadersTooLarge.code(), 431);
        assert_eq!(
            Status::HeadersTooLarge.reason(),
            "Request Header Fields Too Large"
        );
        assert_eq!(Status::ServiceUnavailable.reason(), "Service Unavailable");
    }
}
