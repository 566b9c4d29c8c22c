//! The pull cursor: a keyset position on `(updated, id)`, an overlap window and a seen-set (the
//! shared `remote::client::window::WindowCursor`, see there for the rule).
//!
//! PocketBase stamps `updated` in Go *before* the write transaction commits, so a row can become
//! visible after rows stamped later were already read; the window (the server's batch timeout
//! bounds a write transaction) and the seen-set make pulls deliver it once.

pub(crate) use crate::remote::client::window::Start;
use crate::remote::client::window::{CursorKind, WindowCursor};

/// PocketBase cursors (`pb1:` + JSON).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PocketBase;

impl CursorKind for PocketBase {
    const PREFIX: &'static str = "pb1:";
    const NAME: &'static str = "pocketbase";
}

/// PocketBase's cursor state.
pub(crate) type CursorState = WindowCursor<PocketBase>;
