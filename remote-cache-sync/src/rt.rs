//! The few runtime services the library needs (spawning tracked tasks, timers, running blocking
//! work), with tokio on native targets and the browser's event loop on `wasm32`.
//!
//! Native builds use tokio exactly as before: every function here is a re-export or a one-line
//! `#[inline]` wrapper of the tokio call it replaces, so native code paths and performance do
//! not change. In the browser (`wasm32-unknown-unknown`) there is no tokio runtime: tasks are
//! spawned with `wasm_bindgen_futures::spawn_local` (still tracked by the orchestrator's
//! `TaskTracker`, so `shutdown` waits for them), timers are `setTimeout` (through
//! `gloo-timers`), and blocking work runs inline: the browser has one thread per page or worker,
//! and SQLite is built single-threaded there.
//!
//! # `Send`
//!
//! Natively a task may move between tokio's worker threads, so the futures of
//! [`LocalStore`](crate::LocalStore) and [`RemoteStore`](crate::RemoteStore) are `Send`. In the
//! browser they cannot be: `fetch`, timers and OPFS hold JavaScript values, which are not `Send`.
//! The decision: the traits (and every impl in this crate) are declared with
//!
//! ```text
//! #[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
//! #[cfg_attr(not(target_arch = "wasm32"), async_trait)]
//! ```
//!
//! so their futures are `Send` natively (unchanged) and not required to be on `wasm32`. A store
//! implemented outside this crate writes the same two lines on its impl. The stores themselves
//! stay `Send + Sync` on both targets (they are shared through `Arc`; in the browser only one
//! thread ever touches them). Spawning goes through [`MaybeSend`], which is `Send` natively and
//! nothing on `wasm32`. On `wasm32` the `Orchestrator` itself is not `Send` (its in-flight syncs
//! are `!Send` shared futures), which one thread does not need.
//!
//! Features `server`, `postgres` and `fault-proxy` need tokio's runtime and sockets: they are
//! native-only (`lib.rs` refuses them on `wasm32` with a `compile_error!`).

use std::future::Future;
use std::time::Duration;

/// `Send` natively (tokio may move a task between threads); no bound in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` natively (tokio may move a task between threads); no bound in the browser.
#[cfg(target_arch = "wasm32")]
pub(crate) trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future: `Send` natively, not in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;
/// A boxed future: `Send` natively, not in the browser.
#[cfg(target_arch = "wasm32")]
pub(crate) type BoxFuture<'a, T> = futures::future::LocalBoxFuture<'a, T>;

/// A boxed stream: `Send` natively, not in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type BoxStream<'a, T> = futures::stream::BoxStream<'a, T>;
/// A boxed stream: `Send` natively, not in the browser.
#[cfg(target_arch = "wasm32")]
pub(crate) type BoxStream<'a, T> = futures::stream::LocalBoxStream<'a, T>;

/// Boxes a stream as a [`BoxStream`].
#[allow(dead_code)] // Used by the realtime adapters only.
pub(crate) fn box_stream<'a, T>(
    s: impl futures::Stream<Item = T> + MaybeSend + 'a,
) -> BoxStream<'a, T> {
    Box::pin(s)
}

/// A timeout passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// Where tracked tasks are spawned: the current tokio runtime natively, the event loop in the
/// browser.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) struct Spawner(tokio::runtime::Handle);

/// Where tracked tasks are spawned: the current tokio runtime natively, the event loop in the
/// browser.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Spawner;

impl Spawner {
    /// The current runtime; `None` outside one (natively; the browser always has its loop).
    #[cfg(not(target_arch = "wasm32"))]
    #[inline]
    pub(crate) fn current() -> Option<Spawner> {
        tokio::runtime::Handle::try_current().ok().map(Spawner)
    }

    /// The current runtime; `None` outside one (natively; the browser always has its loop).
    #[cfg(target_arch = "wasm32")]
    #[inline]
    pub(crate) fn current() -> Option<Spawner> {
        Some(Spawner)
    }

    /// Spawns `fut`, tracked by `tasks`.
    #[inline]
    pub(crate) fn spawn_tracked<F>(&self, tasks: &tokio_util::task::TaskTracker, fut: F)
    where
        F: Future<Output = ()> + MaybeSend + 'static,
    {
        #[cfg(not(target_arch = "wasm32"))]
        tasks.spawn_on(fut, &self.0);
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_futures::spawn_local(tasks.track_future(fut));
    }
}

/// Spawns `fut` on the current runtime, tracked by `tasks` (natively this panics outside a
/// tokio runtime, as `tokio::spawn` does).
#[inline]
pub(crate) fn spawn_tracked<F>(tasks: &tokio_util::task::TaskTracker, fut: F)
where
    F: Future<Output = ()> + MaybeSend + 'static,
{
    #[cfg(not(target_arch = "wasm32"))]
    tasks.spawn(fut);
    #[cfg(target_arch = "wasm32")]
    Spawner.spawn_tracked(tasks, fut);
}

/// Waits for `d`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use tokio::time::sleep;

/// Waits for `d` (a browser timer). Browsers fire a timer longer than `i32::MAX` ms (about 24.8
/// days) at once, so longer waits are capped there.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn sleep(d: Duration) {
    let ms = d.as_millis().min(i32::MAX as u128);
    gloo_timers::future::sleep(Duration::from_millis(ms as u64)).await;
}

/// Runs `fut` for at most `d`.
#[cfg(not(target_arch = "wasm32"))]
#[inline]
pub(crate) async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(d, fut).await.map_err(|_| Elapsed)
}

/// Runs `fut` for at most `d`.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    use futures::future::{Either, select};
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(sleep(d));
    match select(fut, timer).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(_) => Err(Elapsed),
    }
}

/// A spawned task's handle: awaiting it gives the task's output; `abort` stops it.
#[cfg(all(not(target_arch = "wasm32"), feature = "http-base"))]
pub(crate) use tokio::task::JoinHandle;

/// Spawns `fut` on the current runtime (natively this panics outside a tokio runtime).
#[cfg(all(not(target_arch = "wasm32"), feature = "http-base"))]
pub(crate) use tokio::spawn;

/// Spawns `fut` and lets it run on its own (natively this panics outside a tokio runtime).
#[cfg(all(
    not(target_arch = "wasm32"),
    any(feature = "http-base", feature = "postgres")
))]
#[inline]
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(fut);
}

/// Spawns `fut` on the browser's event loop and lets it run on its own.
#[cfg(all(target_arch = "wasm32", feature = "http-base"))]
pub(crate) fn spawn_detached<F>(fut: F)
where
    F: Future<Output = ()> + 'static,
{
    wasm_bindgen_futures::spawn_local(fut);
}

/// A spawned task's handle: awaiting it gives the task's output; dropping it (or `abort`, then
/// dropping it) stops the task at its next poll.
#[cfg(all(target_arch = "wasm32", feature = "http-base"))]
pub(crate) struct JoinHandle<T>(futures::future::RemoteHandle<T>);

#[cfg(all(target_arch = "wasm32", feature = "http-base"))]
impl<T> JoinHandle<T> {
    /// Stops the task once the handle is dropped (a remote handle cancels its task on drop).
    pub(crate) fn abort(&self) {}
}

#[cfg(all(target_arch = "wasm32", feature = "http-base"))]
impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(Ok)
    }
}

/// Spawns `fut` on the browser's event loop.
#[cfg(all(target_arch = "wasm32", feature = "http-base"))]
pub(crate) fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    use futures::FutureExt;
    let (task, handle) = fut.remote_handle();
    wasm_bindgen_futures::spawn_local(task);
    JoinHandle(handle)
}

/// Runs blocking work off the async worker threads (tokio's blocking pool).
#[cfg(all(not(target_arch = "wasm32"), feature = "sqlite"))]
pub(crate) use tokio::task::{JoinError, spawn_blocking};

/// A task that failed; it cannot happen in the browser (work runs inline, tasks do not panic
/// across `spawn_local`).
#[cfg(all(target_arch = "wasm32", any(feature = "sqlite", feature = "http-base")))]
#[derive(Debug)]
pub(crate) enum JoinError {}

#[cfg(all(target_arch = "wasm32", any(feature = "sqlite", feature = "http-base")))]
impl std::fmt::Display for JoinError {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

/// Runs blocking work inline: the browser has one thread per page or worker (and SQLite is
/// single-threaded there), so there is nowhere else to run it.
#[cfg(all(target_arch = "wasm32", feature = "sqlite"))]
pub(crate) async fn spawn_blocking<F, R>(f: F) -> Result<R, JoinError>
where
    F: FnOnce() -> R,
{
    Ok(f())
}
