//! [`Planner`]: the reconciliation as a pure state machine. Events in (both sides' answers to a
//! request), actions out (the next requests, then a [`Plan`]); no I/O, so every path is
//! unit-tested here.
//!
//! Round 1 digests the [`TOP_LENGTH`]-digit buckets. A bucket whose count or hash differs
//! descends by [`STEP`] digits, unless it is small (at most [`LIST_MAX`] rows on the larger
//! side), one side is empty, or it is a full bucket: then its rows are listed and compared id by
//! id. Equal buckets are never looked at again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::protocol::{
    BUCKET_DIGITS, BucketDigest, DigestRequest, DigestResponse, MAX_PREFIXES, STEP,
};

/// A differing bucket with at most this many rows (on the larger side) is listed rather than
/// descended into (the default of [`Planner::with_list_max`]). Listing a bucket of 512 rows
/// costs about 30 KB; descending costs one more round, i.e. one more scan of the scope on
/// the remote.
pub const LIST_MAX: u64 = 512;

/// What reconciliation found and what to do about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Live remote rows the digests covered.
    pub checked: u64,
    /// Ids to fetch from the remote: missing locally, or at another version.
    pub fetch: Vec<String>,
    /// Rows the remote no longer has: `(id, local canonical version)`.
    pub remove: Vec<(String, String)>,
    /// Ids the remote has and the cache has not.
    pub missing: u64,
    /// Ids both have, at different versions.
    pub stale: u64,
    /// Ids the cache has and the remote has not.
    pub extra: u64,
    /// Rounds of requests (each asks both sides once).
    pub rounds: u64,
}

/// The reconciliation as a pure state machine: [`next_request`](Self::next_request) gives a
/// request for both sides, [`on_answers`](Self::on_answers) takes their answers, and
/// [`finish`](Self::finish) gives the [`Plan`] once no request is left.
///
/// Round 1 digests the 3-digit buckets. A bucket whose count or hash differs descends by 2
/// digits, unless it is small (at most [`LIST_MAX`] rows on the larger side), one side is empty,
/// or it is a full bucket: then its rows are listed and compared id by id. Equal buckets are
/// never looked at again.
#[derive(Debug)]
pub struct Planner {
    queue: VecDeque<DigestRequest>,
    plan: Plan,
    list_max: u64,
}

impl Default for Planner {
    fn default() -> Self {
        Self::new()
    }
}

impl Planner {
    /// A planner whose first request is [`DigestRequest::top`].
    pub fn new() -> Self {
        Planner {
            queue: VecDeque::from([DigestRequest::top()]),
            plan: Plan::default(),
            list_max: LIST_MAX,
        }
    }

    /// Lists differing buckets of at most `rows` rows instead of descending into them.
    pub fn with_list_max(mut self, rows: u64) -> Self {
        self.list_max = rows;
        self
    }

    /// The next request to send to both sides, or `None` when the plan is complete.
    pub fn next_request(&mut self) -> Option<DigestRequest> {
        self.queue.pop_front()
    }

    /// Takes both sides' answers to `req` (a request [`next_request`](Self::next_request) gave).
    pub fn on_answers(
        &mut self,
        req: &DigestRequest,
        local: &DigestResponse,
        remote: &DigestResponse,
    ) {
        self.plan.rounds += 1;
        if req.prefixes.iter().any(String::is_empty) {
            self.plan.checked += remote.buckets.iter().map(|b| b.count).sum::<u64>();
        }
        self.compare_buckets(req, &local.buckets, &remote.buckets);
        self.compare_rows(local, remote);
    }

    fn compare_buckets(
        &mut self,
        req: &DigestRequest,
        local: &[BucketDigest],
        remote: &[BucketDigest],
    ) {
        let index = |bs: &[BucketDigest]| -> BTreeMap<String, (u64, u64)> {
            bs.iter()
                .filter(|b| {
                    b.prefix.len() == req.length
                        && req
                            .prefixes
                            .iter()
                            .any(|p| b.prefix.starts_with(p.as_str()))
                })
                .map(|b| (b.prefix.clone(), (b.count, b.hash)))
                .collect()
        };
        let (l, r) = (index(local), index(remote));
        let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
        let (mut descend, mut list) = (Vec::new(), Vec::new());
        for k in keys {
            let (lc, lh) = l.get(k).copied().unwrap_or_default();
            let (rc, rh) = r.get(k).copied().unwrap_or_default();
            if (lc, lh) == (rc, rh) {
                continue;
            }
            if lc == 0 || rc == 0 || lc.max(rc) <= self.list_max || k.len() + STEP > BUCKET_DIGITS {
                list.push(k.clone());
            } else {
                descend.push(k.clone());
            }
        }
        let length = req.length + STEP;
        // Descents and listings of one round travel in the same requests.
        let mut descend = descend.into_iter().peekable();
        let mut list = list.into_iter().peekable();
        while descend.peek().is_some() || list.peek().is_some() {
            let prefixes: Vec<String> = descend.by_ref().take(MAX_PREFIXES).collect();
            let room = MAX_PREFIXES - prefixes.len();
            let listed: Vec<String> = list.by_ref().take(room).collect();
            self.queue.push_back(DigestRequest {
                length: if prefixes.is_empty() { 0 } else { length },
                prefixes,
                list: listed,
            });
        }
    }

    fn compare_rows(&mut self, local: &DigestResponse, remote: &DigestResponse) {
        let theirs: HashMap<&str, &str> = remote
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.version.as_str()))
            .collect();
        let ours: HashMap<&str, &str> = local
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.version.as_str()))
            .collect();
        let mut fetch: Vec<&str> = Vec::new();
        for (id, v) in &theirs {
            match ours.get(id) {
                None => {
                    self.plan.missing += 1;
                    fetch.push(id);
                }
                Some(mine) if mine != v => {
                    self.plan.stale += 1;
                    fetch.push(id);
                }
                Some(_) => {}
            }
        }
        fetch.sort_unstable();
        self.plan.fetch.extend(fetch.into_iter().map(str::to_owned));
        let mut remove: Vec<(String, String)> = ours
            .iter()
            .filter(|(id, _)| !theirs.contains_key(*id))
            .map(|(id, v)| ((*id).to_owned(), (*v).to_owned()))
            .collect();
        remove.sort_unstable();
        self.plan.extra += remove.len() as u64;
        self.plan.remove.extend(remove);
    }

    /// The plan, once [`next_request`](Self::next_request) returned `None`.
    pub fn finish(self) -> Plan {
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::hash::RowSet;

    fn set(rows: &[(String, String)]) -> RowSet {
        RowSet::new(rows.iter().cloned())
    }

    /// Runs the planner against two row sets, returning the plan and the rows each side listed.
    fn run(local: &RowSet, remote: &RowSet) -> (Plan, u64) {
        let mut p = Planner::new().with_list_max(16);
        let mut listed = 0;
        while let Some(req) = p.next_request() {
            req.validate().unwrap();
            let (l, r) = (local.answer(&req), remote.answer(&req));
            listed += r.rows.len() as u64;
            p.on_answers(&req, &l, &r);
        }
        (p.finish(), listed)
    }

    fn rows(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("rec-{i}"), "2024-01-01T00:00:00Z".to_owned()))
            .collect()
    }

    #[test]
    fn equal_sides_stop_after_one_round() {
        let r = rows(5_000);
        let (plan, listed) = run(&set(&r), &set(&r));
        assert_eq!(plan.rounds, 1);
        assert_eq!(plan.checked, 5_000);
        assert_eq!((plan.missing, plan.stale, plan.extra, listed), (0, 0, 0, 0));
        assert!(plan.fetch.is_empty() && plan.remove.is_empty());
    }

    #[test]
    fn finds_missing_stale_and_extra_and_lists_little() {
        let remote = rows(50_000);
        let mut local = remote.clone();
        local.retain(|(id, _)| id != "rec-10" && id != "rec-20"); // missing
        local.iter_mut().find(|(id, _)| id == "rec-30").unwrap().1 = "2023-01-01T00:00:00Z".into(); // stale
        local.push(("gone-1".into(), "2024-01-01T00:00:00Z".into())); // extra
        let (plan, listed) = run(&set(&local), &set(&remote));
        assert_eq!((plan.missing, plan.stale, plan.extra), (2, 1, 1));
        let mut fetch = plan.fetch.clone();
        fetch.sort();
        assert_eq!(fetch, ["rec-10", "rec-20", "rec-30"]);
        assert_eq!(
            plan.remove,
            [("gone-1".to_owned(), "2024-01-01T00:00:00Z".to_owned())]
        );
        assert_eq!(plan.checked, 50_000);
        // 50k rows over 4096 buckets: ~12 per bucket, so differing buckets are listed directly.
        assert!(listed < 200, "listed {listed}");
    }

    #[test]
    fn big_buckets_descend_before_listing() {
        let remote = rows(150_000); // ~37 rows per top bucket: more than 16
        let mut local = remote.clone();
        local.remove(12_345);
        let (plan, listed) = run(&set(&local), &set(&remote));
        assert_eq!(plan.fetch, ["rec-12345"]);
        assert_eq!(plan.missing, 1);
        assert!(plan.rounds >= 3, "{plan:?}");
        assert!(listed <= 5, "listed {listed}");
    }

    #[test]
    fn an_empty_side_is_listed_without_descending() {
        let remote = rows(150_000);
        let (plan, _) = run(&set(&[]), &set(&remote));
        assert_eq!(plan.missing, 150_000);
        assert_eq!(plan.rounds, 2);
        let (plan, _) = run(&set(&remote), &set(&[]));
        assert_eq!((plan.extra, plan.checked), (150_000, 0));
    }
}
