//! The digest exchange: what the planner asks, and what each side answers.
//!
//! The id space is cut into *buckets*: a record's bucket is the lowercase hex of
//! `sha256(id)` (64 digits), and a *prefix* of it names every bucket it starts. A
//! [`DigestRequest`] asks, for the live rows of a scope, the count and hash of each bucket under
//! some prefixes (grouped by their first [`length`](DigestRequest::length) digits) and the
//! `(id, version)` rows under others. Both sides answer the same request; see
//! [`hash`](super::hash) for the row hash and the canonical version.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `POST`: our server's digest endpoint ([`WireDigestRequest`] → [`DigestResponse`]),
/// authorized as a pull of the scope (`docs/protocol.md`).
pub const DIGEST_PATH: &str = "/v1/digest";

/// Digits of the bucket prefixes of the first round (4096 buckets).
pub const TOP_LENGTH: usize = 3;
/// Digits a differing bucket descends by (256 children).
pub const STEP: usize = 2;
/// The most prefixes (digest and list together) one request may carry.
pub const MAX_PREFIXES: usize = 4096;
/// Hex digits of a full bucket (sha256).
pub const BUCKET_DIGITS: usize = 64;

/// One round of the exchange (`POST /v1/digest`'s body, without the scope).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DigestRequest {
    /// Bucket prefixes to digest: the rows whose bucket starts with one of them, grouped by the
    /// first [`length`](Self::length) digits of their bucket.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Digits of the groups [`prefixes`](Self::prefixes) are digested by; longer than each of
    /// them, at most 64.
    #[serde(default)]
    pub length: usize,
    /// Bucket prefixes whose rows are listed (`id` and canonical version).
    #[serde(default)]
    pub list: Vec<String>,
}

impl DigestRequest {
    /// The first round: every bucket of [`TOP_LENGTH`] digits.
    pub fn top() -> Self {
        DigestRequest {
            prefixes: vec![String::new()],
            length: TOP_LENGTH,
            list: Vec::new(),
        }
    }

    /// Checks the request's shape: lowercase hex prefixes of at most 64 digits, digest prefixes
    /// of one length and list prefixes of one length, `length` longer than the digest prefixes,
    /// at most [`MAX_PREFIXES`] prefixes.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("digest request: {m}")));
        if self.prefixes.len() + self.list.len() > MAX_PREFIXES {
            return bad(format!("more than {MAX_PREFIXES} prefixes"));
        }
        for p in self.prefixes.iter().chain(&self.list) {
            if p.len() > BUCKET_DIGITS || !p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return bad(format!(
                    "prefix {p:?} is not lowercase hex of at most {BUCKET_DIGITS} digits"
                ));
            }
        }
        for (what, ps) in [("digest", &self.prefixes), ("list", &self.list)] {
            if ps.iter().any(|p| p.len() != ps[0].len()) {
                return bad(format!("{what} prefixes differ in length"));
            }
        }
        if !self.prefixes.is_empty() {
            if self.length > BUCKET_DIGITS {
                return bad(format!("length {} is over {BUCKET_DIGITS}", self.length));
            }
            if let Some(p) = self.prefixes.iter().find(|p| p.len() >= self.length) {
                return bad(format!(
                    "prefix {p:?} is not shorter than length {}",
                    self.length
                ));
            }
        }
        Ok(())
    }
}

/// `POST /v1/digest`'s body: the scope and a [`DigestRequest`]'s fields (unknown fields are
/// refused, as in every request of the protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireDigestRequest {
    /// The scope to digest.
    pub scope: crate::scope::SyncScope,
    /// [`DigestRequest::prefixes`].
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// [`DigestRequest::length`].
    #[serde(default)]
    pub length: usize,
    /// [`DigestRequest::list`].
    #[serde(default)]
    pub list: Vec<String>,
}

impl WireDigestRequest {
    /// The body asking `request` of `scope`.
    pub fn new(scope: &crate::scope::SyncScope, request: &DigestRequest) -> Self {
        WireDigestRequest {
            scope: scope.clone(),
            prefixes: request.prefixes.clone(),
            length: request.length,
            list: request.list.clone(),
        }
    }

    /// The round it asks.
    pub fn request(&self) -> DigestRequest {
        DigestRequest {
            prefixes: self.prefixes.clone(),
            length: self.length,
            list: self.list.clone(),
        }
    }
}

/// Count and hash of the live rows of one bucket group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigest {
    /// The group: `length` digits of the bucket.
    pub prefix: String,
    /// Live rows in it.
    pub count: u64,
    /// XOR of their [`row_hash`](super::row_hash)es, as 16 lowercase hex digits (a JSON number
    /// would lose bits past 2^53).
    #[serde(with = "hex_u64")]
    pub hash: u64,
}

/// A live row of a listed bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedRow {
    /// The record's id.
    pub id: String,
    /// Its canonical version ([`canonical_version`](super::canonical_version)).
    pub version: String,
}

/// The answer to a [`DigestRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DigestResponse {
    /// Non-empty groups under the request's digest prefixes, in any order.
    #[serde(default)]
    pub buckets: Vec<BucketDigest>,
    /// Rows under the request's list prefixes, in any order.
    #[serde(default)]
    pub rows: Vec<ListedRow>,
    /// Bytes the remote sent for this answer (the response body, for HTTP remotes; the size of
    /// the returned values for others). Not part of the wire format.
    #[serde(skip)]
    pub bytes: u64,
}

impl DigestResponse {
    /// Sets [`bytes`](Self::bytes) to the size of the answer's JSON: what a remote that is not
    /// reached over HTTP reports.
    pub fn with_json_size(mut self) -> Self {
        self.bytes = serde_json::to_vec(&self).map_or(0, |v| v.len() as u64);
        self
    }
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() != 16 {
            return Err(D::Error::custom("hash must be 16 hex digits"));
        }
        u64::from_str_radix(&s, 16).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        assert!(DigestRequest::top().validate().is_ok());
        let bad = [
            DigestRequest {
                prefixes: vec!["ABC".into()],
                length: 5,
                list: vec![],
            },
            DigestRequest {
                prefixes: vec!["abc".into()],
                length: 3,
                list: vec![],
            },
            DigestRequest {
                prefixes: vec![],
                length: 0,
                list: vec!["x'".into()],
            },
            DigestRequest {
                prefixes: vec!["".into()],
                length: 65,
                list: vec![],
            },
            DigestRequest {
                prefixes: vec![],
                length: 0,
                list: vec!["0".repeat(65)],
            },
            DigestRequest {
                prefixes: vec![],
                length: 0,
                list: vec!["a".into(); MAX_PREFIXES + 1],
            },
            DigestRequest {
                prefixes: vec!["a".into(), "ab".into()],
                length: 4,
                list: vec![],
            },
            DigestRequest {
                prefixes: vec![],
                length: 0,
                list: vec!["a".into(), "".into()],
            },
        ];
        for r in bad {
            assert!(matches!(r.validate(), Err(Error::InvalidInput(_))), "{r:?}");
        }
        let ok = DigestRequest {
            prefixes: vec!["ab".into(), "cd".into()],
            length: 4,
            list: vec!["f".repeat(64)],
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn hashes_travel_as_hex() {
        let b = BucketDigest {
            prefix: "abc".into(),
            count: 2,
            hash: u64::MAX - 1,
        };
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"prefix":"abc","count":2,"hash":"fffffffffffffffe"}"#
        );
        assert_eq!(serde_json::from_str::<BucketDigest>(&json).unwrap(), b);
        assert!(
            serde_json::from_str::<BucketDigest>(r#"{"prefix":"","count":1,"hash":"12"}"#).is_err()
        );
    }
}
