//! The orchestrator (placeholder while the core lands).

use std::marker::PhantomData;

/// Tunables.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {}

/// What one `synchronize` did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {}

/// Orchestrator.
pub struct Orchestrator<T> {
    _t: PhantomData<T>,
}
