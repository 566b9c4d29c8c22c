//! RemoteStore conformance suite (placeholder).
