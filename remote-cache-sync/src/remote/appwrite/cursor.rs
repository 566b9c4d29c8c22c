//! The pull cursor: a keyset position on `(updated, id)` (Appwrite's `$updatedAt`, `$id`), an
//! overlap window and a seen-set: the shared `remote::client::window::WindowCursor` (see there
//! for the rule), with its own prefix (`aw1:`) so the cursors of two adapters are never mixed up.
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

pub(crate) use crate::remote::client::window::Start;
use crate::remote::client::window::{CursorKind, WindowCursor};

/// Appwrite cursors (`aw1:` + JSON).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Appwrite;

impl CursorKind for Appwrite {
    const PREFIX: &'static str = "aw1:";
    const NAME: &'static str = "appwrite";
}

/// Appwrite's cursor state.
pub(crate) type CursorState = WindowCursor<Appwrite>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::Cursor;

    #[test]
    fn round_trips_and_refuses_other_adapters_cursors() {
        let mut c = CursorState::default();
        c.pos = Some(("2026-01-01T00:00:00.000+00:00".into(), "a".into()));
        let encoded = c.encode();
        assert!(encoded.as_str().starts_with("aw1:"));
        assert_eq!(CursorState::decode(Some(&encoded)).unwrap(), c);
        assert!(CursorState::decode(Some(&Cursor::new("pb1:{}"))).is_err());
        assert!(CursorState::decode(Some(&Cursor::new("aw1:{"))).is_err());
    }
}
