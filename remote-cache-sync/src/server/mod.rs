//! Our HTTP sync server (placeholder).
