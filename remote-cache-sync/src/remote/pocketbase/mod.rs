//! PocketBase remote adapter (being written; see issue 4).
