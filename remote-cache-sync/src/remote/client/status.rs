//! The one table from an HTTP answer (status, headers, body) to an [`Error`] variant.
//!
//! | status | variant | notes |
//! | --- | --- | --- |
//! | 401 | [`Error::Unauthorized`] | the message, prefixed with the backend's code unless that only repeats "unauthorized" |
//! | 403, 404 | [`Error::Refused`] | the request itself is refused (no grant, a missing endpoint), never one op; pauses the scope |
//! | 408, 5xx | [`Error::Unavailable`] | transient |
//! | 429 | [`Error::RateLimited`] | with `Retry-After` in delay-seconds or as an HTTP-date |
//! | any other non-2xx | [`Error::Rejected`] | with the status and the backend's message |
//!
//! A backend only says how to read its error bodies ([`ErrorDetail`], the hook). Where an
//! adapter knows more than the status (PocketBase: a 404 on a list means the collection is
//! missing, [`Error::NotFound`]), it decides before calling the table; such exceptions are
//! documented by the adapter and by the cross-backend test (`tests/fuzz_parsing.rs`).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::Error;

/// What a backend's error body says, read by the backend's hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorDetail {
    /// The backend's stable error code (our protocol's `error.code`), when it sends one.
    pub code: Option<String>,
    /// The backend's human-readable reason; `None` when the body has none (then the status
    /// line stands in).
    pub message: Option<String>,
}

/// The error a non-success answer means; `detail` is what the backend's hook read from the body.
pub(crate) fn status_error(
    backend: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    detail: ErrorDetail,
) -> Error {
    let ErrorDetail { code, message } = detail;
    let from_body = message.is_some();
    let message = message.unwrap_or_else(|| format!("HTTP {status}"));
    let with_code = || match &code {
        Some(c) => format!("{c}: {message}"),
        None => message.clone(),
    };
    match status.as_u16() {
        // The variant already says "unauthorized": repeat the code only if it adds to that.
        401 => Error::Unauthorized {
            backend,
            message: match code.as_deref() {
                Some("unauthorized") | None => message,
                Some(_) => with_code(),
            },
        },
        403 | 404 => Error::Refused {
            backend,
            status: Some(status.as_u16()),
            code,
            message,
        },
        429 => Error::RateLimited {
            backend,
            retry_after: retry_after(headers),
        },
        s if s == 408 || status.is_server_error() => Error::Unavailable {
            backend,
            message: if from_body {
                format!("{status}: {}", with_code())
            } else {
                message
            },
            source: None,
        },
        s => Error::Rejected {
            backend,
            status: Some(s),
            message: with_code(),
        },
    }
}

/// The `Retry-After` header, if present and valid.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Timestamp::now())
}

/// Parses `Retry-After` ([RFC 9110 §10.2.3](https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3)):
/// delay-seconds or an HTTP-date, counted from `now` (a date in the past is zero).
pub(crate) fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(when.duration_since(now)).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(code: Option<&str>, message: &str) -> ErrorDetail {
        ErrorDetail {
            code: code.map(str::to_owned),
            message: Some(message.to_owned()),
        }
    }

    fn map(status: u16, headers: &HeaderMap, d: ErrorDetail) -> Error {
        status_error("b", StatusCode::from_u16(status).unwrap(), headers, d)
    }

    #[test]
    fn the_table() {
        let h = HeaderMap::new();
        let none = ErrorDetail::default;
        assert!(matches!(map(401, &h, none()), Error::Unauthorized { .. }));
        for s in [403, 404] {
            let e = map(s, &h, detail(Some("forbidden"), "no grant"));
            assert!(
                matches!(&e, Error::Refused { status: Some(x), code: Some(c), .. } if *x == s && c == "forbidden"),
                "{e:?}"
            );
            assert!(e.pauses_scope());
        }
        for s in [408, 500, 502, 503, 504, 599] {
            let e = map(s, &h, none());
            assert!(matches!(e, Error::Unavailable { .. }), "{s}: {e:?}");
            assert!(e.is_retryable());
        }
        assert!(matches!(map(429, &h, none()), Error::RateLimited { .. }));
        for s in [300, 400, 405, 409, 410, 413, 422, 451] {
            let e = map(s, &h, none());
            assert!(
                matches!(e, Error::Rejected { status: Some(x), .. } if x == s),
                "{s}: {e:?}"
            );
        }
    }

    #[test]
    fn messages() {
        let h = HeaderMap::new();
        let e = map(401, &h, detail(Some("unauthorized"), "missing token"));
        assert_eq!(e.to_string(), "b: unauthorized: missing token");
        let e = map(401, &h, detail(Some("token_expired"), "log in again"));
        assert_eq!(
            e.to_string(),
            "b: unauthorized: token_expired: log in again"
        );
        let e = map(422, &h, detail(Some("invalid"), "bad title"));
        assert_eq!(e.to_string(), "b: rejected (Some(422)): invalid: bad title");
        let e = map(503, &h, ErrorDetail::default());
        assert_eq!(
            e.to_string(),
            "b: unavailable: HTTP 503 Service Unavailable"
        );
        let e = map(502, &h, detail(None, "upstream"));
        assert_eq!(e.to_string(), "b: unavailable: 502 Bad Gateway: upstream");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: Timestamp = "1994-11-06T08:49:30Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            map(429, &h, ErrorDetail::default()).retry_after(),
            Some(Duration::from_secs(3))
        );
    }
}
