//! The pull cursor: a keyset position on `(updated, id)` (Appwrite's `$updatedAt`, `$id`), an
//! overlap window and a seen-set: the algorithm of the PocketBase adapter's cursor, with its own
//! prefix (`aw1:`) so the cursors of the two adapters are never mixed up.
//!
//! Appwrite stamps `$updatedAt` in PHP *before* the write transaction commits, so a document can become
//! visible after documents stamped later were already read (PocketBase, which does the same, was
//! measured hiding a 1,000-row batch for 0.4 s after its stamps). A plain keyset cursor would skip
//! it forever. The rule used here:
//!
//! * a read answered at server time `R` has seen every row stamped before `R - window`
//!   (no write request lasts longer than `window`);
//! * while paging forward (`has_more`), pages continue strictly after the last `(updated, id)`;
//! * a read that reached the end of the feed, or whose last row is stamped after `R - window`,
//!   lowers the *rescan mark* to `R - window`;
//! * the next pull after the end of the feed (a new sync) starts at the rescan mark instead of
//!   the position, and skips the `(updated, id)` pairs it already delivered (the seen-set), so
//!   late-committed rows are delivered once and already-delivered rows are not repeated.
//!
//! The cursor is never "server now": at most `R - window`, from the server's own clock (the
//! `Date` header, 1 s resolution, so one more second of margin is taken).
//!
//! `$sequence` cannot replace this: Appwrite assigns it when a document is created and never
//! changes it on update (<https://appwrite.io/docs/products/databases/documents>), so it orders
//! insertions, not changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::delta::Cursor;
use crate::error::{Error, Result};

/// Cap on remembered `(updated, id)` pairs; past it the oldest are dropped, which can only cause a
/// row to be delivered twice (a no-op for the local store), never skipped.
const MAX_SEEN: usize = 5_000;

const PREFIX: &str = "aw1:";

/// Decoded cursor state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CursorState {
    /// Last scanned `(updated, id)`, as canonical stamps (they sort like the values).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<(String, String)>,
    /// The previous read reached the end of the feed: the next pull starts a new pass at `low`.
    #[serde(rename = "t", default)]
    pub tail: bool,
    /// Rescan mark: the earliest `updated` an uncommitted write could still carry.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub low: Option<String>,
    /// Delivered rows at or after the rescan mark: `updated` → hashes of ids.
    #[serde(rename = "s", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen: BTreeMap<String, Vec<u64>>,
}

/// Where a read starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Start {
    /// The beginning of the feed.
    Beginning,
    /// Strictly after this `(updated, id)`.
    After(String, String),
    /// At this `updated`, inclusive (a rescan pass).
    From(String),
}

impl CursorState {
    /// Parses a cursor produced by [`CursorState::encode`].
    pub fn decode(c: Option<&Cursor>) -> Result<Self> {
        let Some(c) = c else {
            return Ok(Self::default());
        };
        let json = c
            .as_str()
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::InvalidInput("not an appwrite cursor".into()))?;
        serde_json::from_str(json)
            .map_err(|e| Error::InvalidInput(format!("bad appwrite cursor: {e}")))
    }

    /// The opaque cursor string.
    pub fn encode(&self) -> Cursor {
        Cursor::new(format!(
            "{PREFIX}{}",
            serde_json::to_string(self).expect("cursor state serializes")
        ))
    }

    /// Where the next read starts; a rescan resets the pass state.
    pub fn begin_read(&mut self) -> Start {
        if self.tail {
            self.tail = false;
            if let Some(low) = self.low.take() {
                return Start::From(low);
            }
        }
        match &self.pos {
            None => Start::Beginning,
            Some((u, i)) => Start::After(u.clone(), i.clone()),
        }
    }

    /// Whether `(updated, id)` was delivered already.
    pub fn was_seen(&self, updated: &str, id: &str) -> bool {
        self.seen
            .get(updated)
            .is_some_and(|v| v.contains(&hash(id)))
    }

    /// Records a delivered row when it is recent enough to be rescanned (`updated >= risk_low`).
    pub fn mark_seen(&mut self, updated: &str, id: &str, risk_low: &str) {
        if updated >= risk_low {
            match self.seen.get_mut(updated) {
                Some(v) => v.push(hash(id)),
                None => {
                    self.seen.insert(updated.to_owned(), vec![hash(id)]);
                }
            }
        }
    }

    /// Finishes one read: `last` is the last scanned row, `reached_end` whether the page was short,
    /// `risk_low` is `R - window` for the read's server time `R`.
    pub fn end_read(
        &mut self,
        last: Option<(String, String)>,
        reached_end: bool,
        risk_low: String,
    ) {
        if let Some(last) = last {
            self.pos = Some(last);
        }
        let risky = reached_end || self.pos.as_ref().is_some_and(|(u, _)| *u >= risk_low);
        if risky && self.low.as_ref().is_none_or(|l| risk_low < *l) {
            self.low = Some(risk_low);
        }
        if reached_end {
            self.tail = true;
            if let Some(low) = &self.low {
                self.seen = self.seen.split_off(low);
            }
        }
        let mut total: usize = self.seen.values().map(Vec::len).sum();
        while total > MAX_SEEN {
            let Some((_, v)) = self.seen.pop_first() else {
                break;
            };
            total -= v.len();
        }
    }
}

/// FNV-1a, 64 bits: stable across builds (the cursor is persisted).
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        let mut c = CursorState::default();
        c.end_read(
            Some((s("2026-01-01 00:00:01.000Z"), s("a"))),
            false,
            s("2025-01-01 00:00:00.000Z"),
        );
        assert_eq!(CursorState::decode(Some(&c.encode())).unwrap(), c);
        assert!(CursorState::decode(Some(&Cursor::new("42"))).is_err());
        assert!(CursorState::decode(Some(&Cursor::new("aw1:{"))).is_err());
    }

    #[test]
    fn pages_forward_then_rescans_from_the_window() {
        let mut c = CursorState::default();
        assert_eq!(c.begin_read(), Start::Beginning);
        // An old page, far from the server's clock: no rescan mark.
        c.end_read(
            Some((s("2026-01-01 00:00:01.000Z"), s("a"))),
            false,
            s("2026-01-02 00:00:00.000Z"),
        );
        assert_eq!(c.low, None);
        assert_eq!(
            c.begin_read(),
            Start::After(s("2026-01-01 00:00:01.000Z"), s("a"))
        );
        // The last page reaches the end: the next pull rescans from R - window.
        c.mark_seen("2026-01-02 00:00:05.000Z", "b", "2026-01-02 00:00:00.000Z");
        c.mark_seen(
            "2026-01-01 00:00:02.000Z",
            "old",
            "2026-01-02 00:00:00.000Z",
        );
        c.end_read(
            Some((s("2026-01-02 00:00:05.000Z"), s("b"))),
            true,
            s("2026-01-02 00:00:00.000Z"),
        );
        assert!(c.tail);
        assert!(c.was_seen("2026-01-02 00:00:05.000Z", "b"));
        assert!(
            !c.was_seen("2026-01-01 00:00:02.000Z", "old"),
            "only recent rows are remembered"
        );
        assert_eq!(c.begin_read(), Start::From(s("2026-01-02 00:00:00.000Z")));
        // The pass after the rescan continues from the position.
        c.end_read(
            Some((s("2026-01-02 00:00:06.000Z"), s("c"))),
            false,
            s("2026-01-01 00:00:00.000Z"),
        );
        assert_eq!(
            c.begin_read(),
            Start::After(s("2026-01-02 00:00:06.000Z"), s("c"))
        );
    }

    #[test]
    fn seen_set_is_bounded() {
        let mut c = CursorState::default();
        for i in 0..(MAX_SEEN + 10) {
            c.mark_seen(
                &format!("2026-01-01 00:00:{:02}.{:03}Z", i / 1000 % 60, i % 1000),
                &i.to_string(),
                "",
            );
        }
        c.end_read(None, false, s("2000"));
        assert!(c.seen.values().map(Vec::len).sum::<usize>() <= MAX_SEEN);
    }
}
