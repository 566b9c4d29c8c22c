//! The bucket of an id, the hash of a row and the digests of a set of rows, computed the same
//! way by every side: in Rust here, in SQL by the PostgreSQL remote (`sha256`, `bit_xor`).
//!
//! - bucket: `hex(sha256(utf8(id)))`, lowercase;
//! - canonical version: the version [`Timestamp`] as RFC 3339 (`Timestamp`'s `Display`: UTC,
//!   `Z`, fractional seconds without trailing zeros), which is also what our remotes store;
//! - row hash: the first 8 bytes, big-endian, of `sha256(utf8(id) || "\n" || version)`
//!   (the version has no newline, so the split is unambiguous);
//! - bucket digest: the row count and the XOR of the row hashes (order-free, so any side can
//!   group rows as it likes).

use std::collections::HashMap;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::protocol::{BucketDigest, DigestRequest, DigestResponse, ListedRow};

/// The bucket of `id`: the 64 lowercase hex digits of `sha256(id)`.
pub fn bucket_hex(id: &str) -> String {
    String::from_utf8_lossy(&bucket_bytes(id)).into_owned()
}

/// [`bucket_hex`] as ASCII bytes, without an allocation.
fn bucket_bytes(id: &str) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(id.as_bytes());
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// The first `n` digits of a bucket, as text (they are ASCII hex).
fn digits(bucket: &[u8; 64], n: usize) -> &str {
    std::str::from_utf8(&bucket[..n]).unwrap_or_default()
}

/// The hash of the row `(id, version)`, `version` canonical.
pub fn row_hash(id: &str, version: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update(b"\n");
    h.update(version.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The canonical text of a version.
pub fn canonical_version(version: Timestamp) -> String {
    version.to_string()
}

/// Prefixes looked up by the lengths they come in.
struct PrefixSet<'a> {
    set: std::collections::HashSet<&'a str>,
    lengths: Vec<usize>,
}

impl<'a> PrefixSet<'a> {
    fn new(prefixes: &'a [String]) -> Self {
        let mut lengths: Vec<usize> = prefixes.iter().map(String::len).collect();
        lengths.sort_unstable();
        lengths.dedup();
        PrefixSet {
            set: prefixes.iter().map(String::as_str).collect(),
            lengths,
        }
    }

    fn matches(&self, bucket: &[u8; 64]) -> bool {
        self.lengths
            .iter()
            .any(|&n| n <= bucket.len() && self.set.contains(digits(bucket, n)))
    }
}

/// The answer to `req` over `(id, canonical version)` rows read once, in any order (each id at
/// most once): what a remote computes in Rust from a scan of its live rows. Rows outside the
/// request's prefixes cost one `sha256` each.
pub fn digest_rows<'r>(
    rows: impl IntoIterator<Item = (&'r str, &'r str)>,
    req: &DigestRequest,
) -> DigestResponse {
    let digest = PrefixSet::new(&req.prefixes);
    let list = PrefixSet::new(&req.list);
    let mut groups: HashMap<String, (u64, u64)> = HashMap::new();
    let mut listed = Vec::new();
    for (id, version) in rows {
        let bucket = bucket_bytes(id);
        if digest.matches(&bucket) {
            let g = groups
                .entry(digits(&bucket, req.length).to_owned())
                .or_default();
            g.0 += 1;
            g.1 ^= row_hash(id, version);
        }
        if list.matches(&bucket) {
            listed.push(ListedRow {
                id: id.to_owned(),
                version: version.to_owned(),
            });
        }
    }
    let mut buckets: Vec<BucketDigest> = groups
        .into_iter()
        .map(|(prefix, (count, hash))| BucketDigest {
            prefix,
            count,
            hash,
        })
        .collect();
    buckets.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    DigestResponse {
        buckets,
        rows: listed,
        bytes: 0,
    }
}

#[derive(Debug, Clone)]
struct Row {
    bucket: [u8; 64],
    id: String,
    version: String,
    hash: u64,
}

/// The live `(id, version)` rows of one side, hashed once, answering any [`DigestRequest`].
#[derive(Debug, Clone, Default)]
pub struct RowSet {
    /// Sorted by bucket, so the rows under a prefix are contiguous.
    rows: Vec<Row>,
}

impl RowSet {
    /// The set of `(id, canonical version)` rows (an id given twice keeps the first version
    /// given).
    pub fn new(rows: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut rows: Vec<Row> = rows
            .into_iter()
            .map(|(id, version)| Row {
                bucket: bucket_bytes(&id),
                hash: row_hash(&id, &version),
                id,
                version,
            })
            .collect();
        rows.sort_by(|a, b| a.bucket.cmp(&b.bucket).then_with(|| a.id.cmp(&b.id)));
        rows.dedup_by(|later, first| later.id == first.id);
        RowSet { rows }
    }

    /// Rows in the set.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The canonical version of `id`, when the set holds it.
    pub fn version_of(&self, id: &str) -> Option<&str> {
        let bucket = bucket_hex(id);
        let range = self.under(&bucket);
        self.rows[range]
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.version.as_str())
    }

    fn under(&self, prefix: &str) -> std::ops::Range<usize> {
        let p = prefix.as_bytes();
        let start = self.rows.partition_point(|r| &r.bucket[..] < p);
        let end = start + self.rows[start..].partition_point(|r| r.bucket.starts_with(p));
        start..end
    }

    /// The answer to `req` (assumed valid; overlapping prefixes count their rows once each).
    pub fn answer(&self, req: &DigestRequest) -> DigestResponse {
        let mut groups: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for p in &req.prefixes {
            for i in self.under(p) {
                if seen.insert(i) {
                    let r = &self.rows[i];
                    let g = groups.entry(digits(&r.bucket, req.length)).or_default();
                    g.0 += 1;
                    g.1 ^= r.hash;
                }
            }
        }
        let mut listed = std::collections::HashSet::new();
        let mut rows = Vec::new();
        for p in &req.list {
            for i in self.under(p) {
                if listed.insert(i) {
                    let r = &self.rows[i];
                    rows.push(ListedRow {
                        id: r.id.clone(),
                        version: r.version.clone(),
                    });
                }
            }
        }
        let mut buckets: Vec<BucketDigest> = groups
            .into_iter()
            .map(|(prefix, (count, hash))| BucketDigest {
                prefix: prefix.to_owned(),
                count,
                hash,
            })
            .collect();
        buckets.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        DigestResponse {
            buckets,
            rows,
            bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // sha256("") and sha256("abc"): the FIPS 180-2 test vectors.
        assert_eq!(
            bucket_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            bucket_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // sha256("a\nb") = 7d6a8f..., first 8 bytes.
        assert_eq!(
            row_hash("a", "b"),
            u64::from_str_radix(&bucket_hex("a\nb")[..16], 16).unwrap()
        );
        let t: Timestamp = "2024-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(canonical_version(t), "2024-01-02T03:04:05.123456789Z");
        let t: Timestamp = "2024-01-02T03:04:05.100Z".parse().unwrap();
        assert_eq!(canonical_version(t), "2024-01-02T03:04:05.1Z");
    }

    #[test]
    fn answers_group_and_list() {
        let set = RowSet::new((0..100).map(|i| (format!("id-{i}"), format!("v{i}"))));
        assert_eq!(set.len(), 100);
        let top = set.answer(&DigestRequest::top());
        assert_eq!(top.buckets.iter().map(|b| b.count).sum::<u64>(), 100);
        let all = set.answer(&DigestRequest {
            prefixes: vec![],
            length: 0,
            list: vec![String::new()],
        });
        assert_eq!(all.rows.len(), 100);
        // One bucket's listing holds exactly its rows.
        let b = &top.buckets[0];
        let one = set.answer(&DigestRequest {
            prefixes: vec![b.prefix.clone()],
            length: 5,
            list: vec![b.prefix.clone()],
        });
        assert_eq!(one.rows.len() as u64, b.count);
        let xor = one
            .rows
            .iter()
            .fold(0, |h, r| h ^ row_hash(&r.id, &r.version));
        assert_eq!(xor, b.hash);
        assert_eq!(one.buckets.iter().map(|c| c.count).sum::<u64>(), b.count);
        assert_eq!(set.version_of("id-7"), Some("v7"));
        // The streaming digest answers the same.
        let raw: Vec<(String, String)> = (0..100)
            .map(|i| (format!("id-{i}"), format!("v{i}")))
            .collect();
        for req in [
            DigestRequest::top(),
            DigestRequest {
                prefixes: vec![b.prefix.clone()],
                length: 5,
                list: vec![b.prefix.clone(), String::new()],
            },
        ] {
            let mut streamed = digest_rows(raw.iter().map(|(a, b)| (a.as_str(), b.as_str())), &req);
            let mut from_set = set.answer(&req);
            streamed.rows.sort_by(|a, b| a.id.cmp(&b.id));
            from_set.rows.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(streamed, from_set);
        }
        assert_eq!(set.version_of("id-700"), None);
    }
}
