//! Helpers shared by integration tests (each test crate includes the modules it uses).

#[cfg(all(feature = "appwrite", feature = "appwrite-standin"))]
pub mod appwrite;

#[cfg(feature = "supabase")]
pub mod supabase;

#[cfg(all(feature = "server", feature = "http", feature = "sqlite"))]
pub mod server;
