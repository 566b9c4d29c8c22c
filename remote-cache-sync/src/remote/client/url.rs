//! Base URLs and the request URLs built on them.
//!
//! A base URL is `http://` or `https://`, carries no credentials (`user:pass@`: those travel in
//! headers, from the adapter's credential settings) and no query or fragment. Request URLs are
//! joined from path segments, each percent-encoded, so a record id or collection name can never
//! add a path level, a query or a fragment; `.` and `..` (which URLs normalise away) and empty
//! segments are refused.

use reqwest::Url;

use crate::error::{Error, Result};

/// Parses and checks a base URL. `what` names it in messages (`"remote URL"`), and
/// `credentials_hint` says where credentials go instead (`"pass a token instead"`).
pub(crate) fn parse_base(url: &str, what: &str, credentials_hint: &str) -> Result<Url> {
    let bad = |m: String| Error::InvalidInput(format!("{what}: {m}"));
    let parsed = Url::parse(url).map_err(|e| bad(format!("cannot parse {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
        return Err(bad("must be http(s)://host[:port][/path]".into()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(format!(
            "must not carry credentials; {credentials_hint}"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query or fragment".into()));
    }
    Ok(parsed)
}

/// `base` with `segments` appended as path segments, each percent-encoded (a `/` in a segment
/// stays inside it). Fails with [`Error::InvalidInput`] for an empty, `.` or `..` segment.
pub(crate) fn join<S: AsRef<str>>(base: &Url, segments: &[S]) -> Result<Url> {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| Error::InvalidInput(format!("{base} cannot be a base URL")))?;
        path.pop_if_empty();
        for s in segments {
            let s = s.as_ref();
            if matches!(s, "" | "." | "..") {
                return Err(Error::InvalidInput(format!(
                    "URL path segment {s:?} is not allowed"
                )));
            }
            path.push(s);
        }
    }
    Ok(url)
}

/// [`join`] for a fixed path such as `/v1/pull` (split at `/`).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn join_path(base: &Url, path: &str) -> Result<Url> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    join(base, &segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Result<Url> {
        parse_base(s, "remote URL", "pass a token instead")
    }

    #[test]
    fn bases_are_checked() {
        assert!(base("http://127.0.0.1:8080").is_ok());
        assert!(base("https://example.com/sub/").is_ok());
        for bad in [
            "ftp://x",
            "not a url",
            "mailto:a@b",
            "file:///tmp/x",
            "http://u:p@127.0.0.1",
            "http://u@127.0.0.1",
            "http://127.0.0.1/?a=1",
            "http://127.0.0.1/#f",
        ] {
            assert!(base(bad).is_err(), "{bad}");
        }
        let e = base("http://u:s3cret@h").unwrap_err().to_string();
        assert!(e.contains("credentials") && e.contains("token"), "{e}");
    }

    #[test]
    fn joins_are_safe() {
        let b = base("http://h:1/sub/").unwrap();
        assert_eq!(
            join(&b, &["api", "x"]).unwrap().as_str(),
            "http://h:1/sub/api/x"
        );
        let b = base("http://h:1/sub").unwrap();
        assert_eq!(join(&b, &["api"]).unwrap().as_str(), "http://h:1/sub/api");
        assert_eq!(
            join(&b, &["a/b", "c?d", "e#f", "g h", "%"])
                .unwrap()
                .as_str(),
            "http://h:1/sub/a%2Fb/c%3Fd/e%23f/g%20h/%25"
        );
        for bad in ["", ".", ".."] {
            assert!(join(&b, &["api", bad]).is_err(), "{bad:?}");
        }
        assert_eq!(
            join_path(&b, "/v1/pull").unwrap().as_str(),
            "http://h:1/sub/v1/pull"
        );
    }
}
