//! The HTTP plumbing every HTTP adapter shares, written once (the way object_store's `client/`
//! works), so a new adapter writes only its requests and decoding:
//!
//! - [`status`]: the one status → [`Error`](crate::Error) table, with a per-backend hook that
//!   reads the backend's error bodies;
//! - [`retry`]: a small, bounded retry in place of idempotent requests, honouring `Retry-After`;
//! - [`transport`]: client set-up, sending a request and reading its answer, the status table
//!   and retry applied, tokens renewed after a 401, credentials redacted;
//! - [`url`]: base URL checks (http(s) only, no credentials) and safe path joins;
//! - `token`: bearer tokens (a provider trait for login and refresh, a cache that renews before
//!   expiry and once after a 401);
//! - `window`: the overlap-window pull cursor of remotes stamping rows before they commit;
//! - `prefetch`: the next page of a pull fetched while the caller applies the current one;
//! - [`sse`]: server-sent event streams (parsed by `eventsource-stream`) with stall detection,
//!   for the realtime subscriptions (reconnects are [`realtime`](crate::remote::realtime)'s).
//!
//! Internal (feature `http-base`, pulled in by `http`, `pocketbase`, `supabase` and `appwrite`).

#[cfg(any(feature = "pocketbase", feature = "appwrite"))]
pub(crate) mod keyset;
pub(crate) mod prefetch;
pub(crate) mod retry;
#[cfg(any(feature = "http", feature = "pocketbase"))]
pub(crate) mod sse;
pub(crate) mod status;
// Parts of these serve only some backends: a build without all of them leaves those unused.
#[cfg_attr(
    not(all(feature = "pocketbase", feature = "supabase", feature = "appwrite")),
    allow(dead_code)
)]
pub(crate) mod token;
#[cfg_attr(
    not(all(feature = "pocketbase", feature = "supabase", feature = "appwrite")),
    allow(dead_code)
)]
pub(crate) mod transport;
pub(crate) mod url;
#[cfg(any(feature = "pocketbase", feature = "supabase", feature = "appwrite"))]
pub(crate) mod window;
