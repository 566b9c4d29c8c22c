//! [`FaultyRemote`]: wraps any remote and injects failures, to prove that a sync which fails at
//! any step loses nothing. Reusable for your own adapters.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::Timestamp;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::scope::SyncScope;

/// One injected failure, consumed by the next matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next push fails before reaching the remote.
    PushBeforeApply,
    /// The next push reaches the remote and is applied, but the answer is lost.
    PushAfterApply,
    /// The next pull fails.
    Fetch,
    /// The next call of any kind answers 429.
    RateLimited,
}

/// A remote wrapper that fails on command ([`inject`](Self::inject)) or at random
/// ([`with_random_failures`](Self::with_random_failures)). Failures are [`Error::Unavailable`]
/// (retryable), like a dropped connection or a 5xx.
pub struct FaultyRemote<R> {
    inner: R,
    script: Mutex<VecDeque<Fault>>,
    random: Mutex<Option<(StdRng, f64)>>,
    latency: std::time::Duration,
}

impl<R> FaultyRemote<R> {
    /// Wraps `inner`; no failures until told.
    pub fn new(inner: R) -> Self {
        FaultyRemote {
            inner,
            script: Mutex::new(VecDeque::new()),
            random: Mutex::new(None),
            latency: std::time::Duration::ZERO,
        }
    }

    /// Delays every call by `latency` (a slow network).
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency = latency;
        self
    }

    async fn delay(&self) {
        if !self.latency.is_zero() {
            crate::rt::sleep(self.latency).await;
        }
    }

    /// Also fails each call with probability `rate` (a failed push is equally likely to fail
    /// before applying, after applying, or with a 429), from a seeded generator so runs are
    /// reproducible.
    pub fn with_random_failures(self, seed: u64, rate: f64) -> Self {
        *self.random.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((StdRng::seed_from_u64(seed), rate));
        self
    }

    /// Queues a failure for the next matching call.
    pub fn inject(&self, fault: Fault) {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(fault);
    }

    /// The wrapped remote.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn take(&self, wanted: &[Fault]) -> Option<Fault> {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = script.iter().position(|f| wanted.contains(f)) {
            return script.remove(pos);
        }
        drop(script);
        let mut random = self.random.lock().unwrap_or_else(|e| e.into_inner());
        let (rng, rate) = random.as_mut()?;
        if rng.random_bool(*rate) {
            Some(wanted[rng.random_range(0..wanted.len())])
        } else {
            None
        }
    }
}

fn unavailable(what: &str) -> Error {
    Error::Unavailable {
        backend: "faulty",
        message: format!("injected failure: {what}"),
        source: None,
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record, R: RemoteStore<T>> RemoteStore<T> for FaultyRemote<R> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        self.delay().await;
        self.inner.get_by_id(scope, id).await
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        self.delay().await;
        match self.take(&[Fault::Fetch, Fault::RateLimited]) {
            Some(Fault::RateLimited) => Err(Error::RateLimited {
                backend: "faulty",
                retry_after: None,
            }),
            Some(_) => Err(unavailable("fetch")),
            None => self.inner.fetch_since(scope, since, limit).await,
        }
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        self.delay().await;
        match self.take(&[
            Fault::PushBeforeApply,
            Fault::PushAfterApply,
            Fault::RateLimited,
        ]) {
            Some(Fault::PushBeforeApply) => Err(unavailable("push before apply")),
            Some(Fault::PushAfterApply) => {
                self.inner.push(scope, ops).await?;
                Err(unavailable("push answer lost"))
            }
            Some(_) => Err(Error::RateLimited {
                backend: "faulty",
                retry_after: None,
            }),
            None => self.inner.push(scope, ops).await,
        }
    }

    async fn server_time(&self) -> Result<Timestamp> {
        self.inner.server_time().await
    }

    async fn digest(
        &self,
        scope: &SyncScope,
        request: &crate::reconcile::DigestRequest,
    ) -> Result<Option<crate::reconcile::DigestResponse>> {
        self.delay().await;
        self.inner.digest(scope, request).await
    }

    fn subscribe(&self, scopes: &[SyncScope]) -> Option<crate::remote::RemoteEvents> {
        self.inner.subscribe(scopes)
    }
}
