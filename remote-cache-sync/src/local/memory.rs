//! [`InMemoryLocalStore`]: a non-persistent local store for tests and demos (placeholder).

/// In-memory local store.
#[derive(Debug, Default)]
pub struct InMemoryLocalStore<T> {
    _t: std::marker::PhantomData<T>,
}
