//! One next-page prefetcher for every pulling adapter: while the caller applies page N, page N+1
//! is already travelling.
//!
//! A pull that answers `has_more` with a cursor starts fetching the page after that cursor in the
//! background ([`crate::rt::spawn`]: tokio natively, the event loop in the browser). The page is
//! kept per scope, keyed by the cursor and page size it was asked for, and handed out only to the
//! next call that asks for exactly that scope, cursor and size:
//!
//! - a call with another cursor or size drops (aborts) it and fetches in the foreground, so a page
//!   is never returned for the wrong cursor or scope;
//! - a prefetch that failed returns its error to the call that would have fetched the page, as
//!   that call would have failed itself (the request was already retried in place where the
//!   adapter retries reads);
//! - a prefetch that was cancelled (or panicked), or that found nothing, is redone in the
//!   foreground;
//! - a prefetched page shows the feed as it was when the prefetch started, which may be before
//!   the call it answers: it never ends a pass (`has_more` is forced on), so the caller's next
//!   pull asks the server afresh and sees everything committed up to then.
//!
//! At most one page per scope is held in memory; dropping the prefetcher aborts what is in flight.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::delta::{Cursor, Delta};
use crate::error::Result;
use crate::record::Record;
use crate::rt::{JoinHandle, MaybeSend};
use crate::scope::SyncScope;

/// Pages being fetched ahead of the caller, one per scope at most.
pub(crate) struct Prefetcher<T> {
    slots: Mutex<HashMap<SyncScope, Ahead<T>>>,
}

/// A pull started ahead of time: valid for exactly this cursor and page size.
struct Ahead<T> {
    since: Option<Cursor>,
    limit: usize,
    task: JoinHandle<Result<Delta<T>>>,
}

impl<T> Default for Prefetcher<T> {
    fn default() -> Self {
        Prefetcher {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        let slots = self.slots.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, ahead) in slots.drain() {
            ahead.task.abort();
        }
    }
}

impl<T> std::fmt::Debug for Prefetcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher").finish_non_exhaustive()
    }
}

impl<T: Record> Prefetcher<T> {
    /// The page of `scope` after `since` (at most `limit` rows): the prefetched one if it was
    /// asked for exactly this, else `fetch(since)` now. When the page has more after it, the next
    /// one is started with `fetch(next cursor)`. `fetch` must own what it needs (it runs as its own
    /// task); `limit` is part of the key and is passed to nothing, so `fetch` captures its own.
    pub(crate) async fn fetch<F, Fut>(
        &self,
        scope: &SyncScope,
        since: Option<&Cursor>,
        limit: usize,
        fetch: F,
    ) -> Result<Delta<T>>
    where
        F: Fn(Option<Cursor>) -> Fut,
        Fut: Future<Output = Result<Delta<T>>> + MaybeSend + 'static,
    {
        let ahead = self.lock().remove(scope);
        let prefetched = match ahead {
            Some(a) if a.since.as_ref() == since && a.limit == limit => match a.task.await {
                Ok(Ok(page)) if !page.is_empty() => Some(page),
                Ok(Err(e)) => return Err(e),
                // Found nothing, or was cancelled: ask again now.
                Ok(Ok(_)) | Err(_) => None,
            },
            Some(a) => {
                a.task.abort();
                None
            }
            None => None,
        };
        let page = match prefetched {
            Some(mut page) if !page.has_more => {
                // Stale by up to a page's time: never the end of a pass (module docs).
                page.has_more = true;
                return Ok(page);
            }
            Some(page) => page,
            None => fetch(since.cloned()).await?,
        };
        if page.has_more
            && let Some(next) = page.cursor.clone()
        {
            let task = crate::rt::spawn(fetch(Some(next.clone())));
            let old = self.lock().insert(
                scope.clone(),
                Ahead {
                    since: Some(next),
                    limit,
                    task,
                },
            );
            if let Some(old) = old {
                old.task.abort();
            }
        }
        Ok(page)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SyncScope, Ahead<T>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jiff::Timestamp;

    use super::*;
    use crate::error::Error;
    use crate::testing::TestRecord;

    /// A feed of `pages` pages of one row each per scope; cursor `n` means "after page n". Page
    /// `fail_at` (if any) fails. Counts the fetches per scope.
    #[derive(Clone)]
    struct Feed {
        pages: usize,
        fail_at: Option<usize>,
        calls: Arc<AtomicUsize>,
    }

    impl Feed {
        fn new(pages: usize) -> Self {
            Feed {
                pages,
                fail_at: None,
                calls: Arc::default(),
            }
        }

        fn fetcher(
            &self,
            scope: &SyncScope,
        ) -> impl Fn(Option<Cursor>) -> crate::rt::BoxFuture<'static, Result<Delta<TestRecord>>>
        {
            let (feed, name) = (self.clone(), scope.canonical());
            move |since| {
                let (feed, name) = (feed.clone(), name.clone());
                Box::pin(async move {
                    feed.calls.fetch_add(1, Ordering::SeqCst);
                    let at: usize = since.map_or(0, |c| c.as_str().parse().unwrap());
                    if feed.fail_at == Some(at) {
                        return Err(Error::Unavailable {
                            backend: "test",
                            message: format!("page {at} failed"),
                            source: None,
                        });
                    }
                    let mut d = Delta::empty(Timestamp::now(), None);
                    d.upserts.push(TestRecord::new(
                        format!("{name}/{at}"),
                        "x",
                        Timestamp::now(),
                    ));
                    d.cursor = Some(Cursor::new((at + 1).to_string()));
                    d.has_more = at + 1 < feed.pages;
                    Ok(d)
                })
            }
        }
    }

    fn scope(owner: &str) -> SyncScope {
        SyncScope::new("notes", [("owner", owner)]).unwrap()
    }

    async fn pull(
        p: &Prefetcher<TestRecord>,
        feed: &Feed,
        s: &SyncScope,
        since: Option<&str>,
    ) -> Result<Delta<TestRecord>> {
        let since = since.map(Cursor::new);
        p.fetch(s, since.as_ref(), 10, feed.fetcher(s)).await
    }

    fn id(d: &Delta<TestRecord>) -> String {
        d.upserts[0].id.clone()
    }

    #[tokio::test]
    async fn serves_the_next_page_from_the_prefetch() {
        let (p, feed, s) = (Prefetcher::default(), Feed::new(3), scope("a"));
        let first = pull(&p, &feed, &s, None).await.unwrap();
        assert!(first.has_more);
        let second = pull(&p, &feed, &s, Some("1")).await.unwrap();
        assert_eq!(id(&second), format!("{}/1", s.canonical()));
        let last = pull(&p, &feed, &s, Some("2")).await.unwrap();
        assert_eq!(id(&last), format!("{}/2", s.canonical()));
        // The last page came from a prefetch: it never ends the pass, and nothing was started
        // after it (the server said it was the last).
        assert!(last.has_more);
        assert_eq!(feed.calls.load(Ordering::SeqCst), 3);
        // So the caller's next call asks the server afresh, in the foreground.
        pull(&p, &feed, &s, Some("3")).await.unwrap();
        assert_eq!(feed.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_different_cursor_discards_the_prefetch() {
        let (p, feed, s) = (Prefetcher::default(), Feed::new(5), scope("a"));
        pull(&p, &feed, &s, None).await.unwrap(); // prefetches "1"
        // The caller asks for another cursor: never page 1's rows.
        let other = pull(&p, &feed, &s, Some("3")).await.unwrap();
        assert_eq!(id(&other), format!("{}/3", s.canonical()));
        // Another page size is another key too.
        let since = Cursor::new("4");
        let d = p
            .fetch(&s, Some(&since), 11, feed.fetcher(&s))
            .await
            .unwrap();
        assert_eq!(id(&d), format!("{}/4", s.canonical()));
    }

    #[tokio::test]
    async fn scopes_are_isolated() {
        let (p, feed) = (Prefetcher::default(), Feed::new(3));
        let (a, b) = (scope("a"), scope("b"));
        pull(&p, &feed, &a, None).await.unwrap(); // prefetches a's "1"
        pull(&p, &feed, &b, None).await.unwrap(); // prefetches b's "1"
        // Same cursor, other scope: each gets its own rows.
        let pb = pull(&p, &feed, &b, Some("1")).await.unwrap();
        assert_eq!(id(&pb), format!("{}/1", b.canonical()));
        let pa = pull(&p, &feed, &a, Some("1")).await.unwrap();
        assert_eq!(id(&pa), format!("{}/1", a.canonical()));
    }

    #[tokio::test]
    async fn a_failed_prefetch_fails_the_call_that_asks_for_its_page() {
        let mut feed = Feed::new(4);
        feed.fail_at = Some(1);
        let (p, s) = (Prefetcher::default(), scope("a"));
        pull(&p, &feed, &s, None).await.unwrap(); // prefetch of "1" fails in the background
        let err = pull(&p, &feed, &s, Some("1")).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        // The error came from the prefetch: page 1 was asked for once, not again in the foreground.
        assert_eq!(feed.calls.load(Ordering::SeqCst), 2);
        // A retry asks the server again (nothing is kept after an error).
        feed.fail_at = None;
        let again = p
            .fetch(&s, Some(&Cursor::new("1")), 10, feed.fetcher(&s))
            .await
            .unwrap();
        assert_eq!(id(&again), format!("{}/1", s.canonical()));
    }
}
