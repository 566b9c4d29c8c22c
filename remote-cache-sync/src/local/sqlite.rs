//! SQLite local store (placeholder).
