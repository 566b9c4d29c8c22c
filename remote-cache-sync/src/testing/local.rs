//! LocalStore conformance suite (placeholder).
