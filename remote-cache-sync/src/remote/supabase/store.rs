//! [`SupabaseRemoteStore`]: the [`RemoteStore`] of a Supabase project, in either mode.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::builder::{Mode, SupabaseBuilder, SupabaseConfig};
use super::client::{BACKEND, Client};
use super::{exact, filter, table};
use crate::delta::{Cursor, Delta};
use crate::error::{Error, Result};
use crate::op::{PendingOp, PushOutcome};
use crate::record::Record;
use crate::remote::RemoteStore;
use crate::remote::client::prefetch::Prefetcher;
use crate::scope::SyncScope;

/// A Supabase project (PostgREST + GoTrue) as a [`RemoteStore`]. Cheap to clone. See the
/// [module docs](super) and `docs/backends/supabase.md`.
pub struct SupabaseRemoteStore<T> {
    client: Arc<Client>,
    config: SupabaseConfig,
    /// Next pages being fetched in the background (shared by clones).
    prefetch: Arc<Prefetcher<T>>,
}

impl<T> Clone for SupabaseRemoteStore<T> {
    fn clone(&self) -> Self {
        SupabaseRemoteStore {
            client: self.client.clone(),
            config: self.config.clone(),
            prefetch: self.prefetch.clone(),
        }
    }
}

impl<T> std::fmt::Debug for SupabaseRemoteStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseRemoteStore")
            .field("client", &self.client)
            .field("config", &self.config)
            .finish()
    }
}

impl<T: Record> SupabaseRemoteStore<T> {
    /// A builder for the project at `url` (e.g. `https://xyz.supabase.co`).
    pub fn builder(url: impl Into<String>) -> SupabaseBuilder<T> {
        SupabaseBuilder::new(url)
    }

    pub(crate) fn from_parts(client: Arc<Client>, config: SupabaseConfig) -> Self {
        SupabaseRemoteStore {
            client,
            config,
            prefetch: Arc::default(),
        }
    }

    /// The tunables.
    pub fn config(&self) -> &SupabaseConfig {
        &self.config
    }

    /// Gets a token now (signs in when configured to), so bad credentials fail early with
    /// [`Error::Unauthorized`].
    pub async fn authenticate(&self) -> Result<()> {
        self.client.tokens.get().await.map(|_| ())
    }

    fn check(&self, scope: &SyncScope) -> Result<()> {
        match self.config.mode {
            Mode::Exact => Ok(()),
            Mode::Table => filter::validate_table_scope(scope),
        }
    }
}

/// One page in either mode; owns what it needs, so it can run as a prefetch task.
fn pull<T: Record>(
    client: Arc<Client>,
    config: &SupabaseConfig,
    scope: SyncScope,
    since: Option<Cursor>,
    limit: usize,
) -> impl std::future::Future<Output = Result<Delta<T>>> + crate::rt::MaybeSend + 'static {
    let (mode, window) = (config.mode, config.overlap_window);
    async move {
        match mode {
            Mode::Exact => exact::pull(&client, &scope, since.as_ref(), limit).await,
            Mode::Table => table::pull(&client, &scope, since.as_ref(), limit, window).await,
        }
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl<T: Record> RemoteStore<T> for SupabaseRemoteStore<T> {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn get_by_id(&self, scope: &SyncScope, id: &str) -> Result<Option<T>> {
        self.check(scope)?;
        match self.config.mode {
            Mode::Exact => exact::get(&self.client, scope, id).await,
            Mode::Table => table::get(&self.client, scope, id).await,
        }
    }

    async fn fetch_since(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
    ) -> Result<Delta<T>> {
        self.check(scope)?;
        if !self.config.prefetch {
            return pull(
                self.client.clone(),
                &self.config,
                scope.clone(),
                since.cloned(),
                limit,
            )
            .await;
        }
        self.prefetch
            .fetch(scope, since, limit, |since| {
                pull(
                    self.client.clone(),
                    &self.config,
                    scope.clone(),
                    since,
                    limit,
                )
            })
            .await
    }

    /// Narrowed by PostgREST filters, decided here (see `query.rs`).
    async fn query(
        &self,
        scope: &SyncScope,
        query: &crate::query::QuerySpec,
    ) -> Result<Option<Vec<T>>> {
        self.check(scope)?;
        super::query::query(&self.client, self.config.mode, scope, query)
            .await
            .map(Some)
    }

    async fn push(&self, scope: &SyncScope, ops: &[PendingOp<T>]) -> Result<Vec<PushOutcome<T>>> {
        self.check(scope)?;
        if ops.iter().any(|op| &op.scope != scope) {
            return Err(Error::InvalidInput(
                "op scope differs from push scope".into(),
            ));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        match self.config.mode {
            Mode::Exact => exact::push(&self.client, scope, ops, self.config.push_batch).await,
            Mode::Table => table::push(&self.client, scope, ops).await,
        }
    }

    /// Exact mode: the guide's `rcs_digest` (RLS applies); table mode has no function to call
    /// and lists the feed.
    async fn digest(
        &self,
        scope: &SyncScope,
        request: &crate::reconcile::DigestRequest,
    ) -> Result<Option<crate::reconcile::DigestResponse>> {
        self.check(scope)?;
        match self.config.mode {
            Mode::Exact => exact::digest(&self.client, scope, request).await,
            Mode::Table => Ok(None),
        }
    }

    async fn server_time(&self) -> Result<Timestamp> {
        match self.config.mode {
            Mode::Exact => exact::now(&self.client).await,
            Mode::Table => table::now(&self.client).await,
        }
    }
}
