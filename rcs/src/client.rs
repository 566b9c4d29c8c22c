//! Client commands against a sync server (`rcs serve` or any server speaking docs/protocol.md)
//! with a local SQLite cache file: `put`, `get`, `list`, `delete`, `sync`, `status`.
//!
//! Writes are offline-first: `put` and `delete` change the cache and queue the op in one
//! transaction, and only talk to the server with `--sync` (or on the next `rcs sync`). Reads
//! answer from the cache; `--refresh` syncs first.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::RemoteOptions;
use remote_cache_sync::{
    CachePolicy, ConflictOutcome, Direction, Filter, JsonRecord, LocalStore, OpId, OpKind,
    Orchestrator, PendingOp, QuerySpec, SyncPhase, SyncScope, Timestamp,
};
use serde_json::Value;

mod reconcile;
mod watch;

/// Where the cache and the server are, and which scope to work in.
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// Remote URL: an `rcs serve` base URL (`http://HOST:PORT`), or a PocketBase server as
    /// `pocketbase://HOST:PORT?auth=superuser|<auth collection>|token` (credentials from
    /// RCS_POCKETBASE_IDENTITY/RCS_POCKETBASE_PASSWORD or RCS_POCKETBASE_TOKEN; the scope name is
    /// the collection, scope keys are field filters), or a Supabase project as
    /// `supabase://HOST:PORT[/PATH]?mode=exact|table[&tls=true]` (keys from RCS_SUPABASE_ANON_KEY
    /// plus RCS_SUPABASE_TOKEN or RCS_SUPABASE_SERVICE_KEY; see docs/backends/supabase.md).
    #[arg(long, env = "RCS_REMOTE", default_value = "http://127.0.0.1:8080")]
    remote: String,
    /// Local cache file (SQLite; created when missing).
    #[arg(long, env = "RCS_CACHE", default_value = "rcs-cache.sqlite")]
    cache: String,
    /// Scope name.
    #[arg(long, env = "RCS_SCOPE", default_value = "records")]
    scope: String,
    /// Scope key, `k=v` (repeat for more).
    #[arg(long = "key", value_name = "K=V")]
    keys: Vec<String>,
    /// Bearer token (prefer the RCS_TOKEN environment variable: arguments show in `ps`).
    #[arg(long, env = "RCS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Request timeout in seconds (every remote).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Client commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or replace a record in the cache (queued for the server).
    Put {
        #[command(flatten)]
        conn: Conn,
        /// Record id.
        id: String,
        /// The record's fields as a JSON object (`id` and `updated_at` are set for you).
        #[arg(default_value = "{}")]
        json: String,
        /// Sync right after the write.
        #[arg(long)]
        sync: bool,
    },
    /// Print one record from the cache as JSON.
    Get {
        #[command(flatten)]
        conn: Conn,
        /// Record id.
        id: String,
        /// Sync before reading.
        #[arg(long)]
        refresh: bool,
    },
    /// Print records from the cache, one JSON object a line.
    List {
        #[command(flatten)]
        conn: Conn,
        /// Filter `FIELD OP VALUE` with OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`, `~` (contains);
        /// VALUE is JSON when it parses, else text. Repeat to AND them (e.g. `--filter 'n>=3'`).
        #[arg(long = "filter", value_name = "EXPR")]
        filters: Vec<String>,
        /// Sort by this field, then by id; prefix `-` for descending (`--order -n` or
        /// `--order=-n`).
        #[arg(long, value_name = "[-]FIELD", allow_hyphen_values = true)]
        order: Option<String>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Sync before reading.
        #[arg(long, conflicts_with = "online")]
        refresh: bool,
        /// Ask the remote: push the queue, then run the query there (records with writes still
        /// queued here are shown as this cache holds them); the cache is not refreshed. A remote
        /// that cannot run the query gets a sync, then the cache answers.
        #[arg(long)]
        online: bool,
    },
    /// Delete a record (a tombstone, queued for the server).
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// Record id.
        id: String,
        /// Sync right after the write.
        #[arg(long)]
        sync: bool,
    },
    /// Push queued writes, then pull every change since the last sync.
    Sync {
        #[command(flatten)]
        conn: Conn,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Sync, then compare the cache with the remote by bucket digests and repair what the change
    /// feed never carried (rows deleted or edited behind it); prints the report as `key: value`
    /// lines. Queued writes are pushed by the sync and never touched by the repair.
    Reconcile {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the queue (pending, parked, quarantined), a pause and its reason, and the last sync.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// List queued ops (pending and parked) and quarantined remote rows, with their reasons.
    Ops {
        #[command(flatten)]
        conn: Conn,
    },
    /// Put parked ops back in the queue (after fixing what the remote objected to).
    Retry {
        #[command(flatten)]
        conn: Conn,
        /// Op ids to retry (see `rcs ops`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        op_ids: Vec<String>,
        /// Retry every parked op of the scope.
        #[arg(long)]
        all: bool,
        /// Sync right after.
        #[arg(long)]
        sync: bool,
    },
    /// Drop queued ops without pushing them; their records are restored from the remote.
    Discard {
        #[command(flatten)]
        conn: Conn,
        /// Op ids to discard (see `rcs ops`).
        #[arg(required = true)]
        op_ids: Vec<String>,
    },
    /// Print the scope's records, then every change as it arrives (one JSON line per changed
    /// record; a deletion prints `{"id":…,"deleted":true}`), syncing in the background until
    /// Ctrl-C. On Ctrl-C, queued writes are pushed (they stay in the cache if the server
    /// cannot be reached) and it exits.
    Watch(watch::Args),
}

struct Client {
    orch: Orchestrator<JsonRecord>,
    local: Arc<SqliteLocalStore<JsonRecord>>,
    scope: SyncScope,
}

fn scope_of(conn: &Conn) -> anyhow::Result<SyncScope> {
    let mut keys = Vec::new();
    for kv in &conn.keys {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--key {kv:?} is not K=V"))?;
        keys.push((k.to_owned(), v.to_owned()));
    }
    Ok(SyncScope::new(conn.scope.clone(), keys)?)
}

impl Client {
    async fn open(conn: &Conn) -> anyhow::Result<Self> {
        let scope = scope_of(conn)?;
        let mut options = RemoteOptions::new().timeout(Duration::from_secs(conn.timeout.max(1)));
        if let Some(t) = &conn.token {
            options = options.token(t.clone());
        }
        let remote =
            remote_cache_sync::remote::from_url_with::<JsonRecord>(&conn.remote, options).await?;
        let local = Arc::new(
            crate::cache::open::<JsonRecord>(&conn.cache)
                .await
                .with_context(|| format!("cannot open cache {}", conn.cache))?,
        );
        let orch = Orchestrator::with(
            local.clone(),
            Arc::<dyn remote_cache_sync::RemoteStore<JsonRecord>>::from(remote),
            Arc::new(remote_cache_sync::LastWriteWins::default()),
            remote_cache_sync::OrchestratorConfig::default()
                .sync_after_write(false)
                .pull_page_size(1_000),
        );
        Ok(Client { orch, local, scope })
    }

    /// A progress bar on stderr fed by the orchestrator's status stream, until the task is
    /// aborted.
    fn show_progress(&self) -> (ProgressBar, tokio::task::JoinHandle<()>) {
        let bar = ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} {pos} changes pulled ({per_sec}, {elapsed})",
            )
            .expect("valid template"),
        );
        bar.set_message(format!("syncing {}:", self.scope));
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut status = self.orch.status_stream();
        let (shown, scope) = (bar.clone(), self.scope.clone());
        let task = tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let Some(s) = status.borrow_and_update().scope(&scope).cloned() else {
                    continue;
                };
                let phase = match s.phase {
                    SyncPhase::Pushing => "pushing",
                    SyncPhase::Pulling => "pulling",
                    _ => "syncing",
                };
                shown.set_message(format!("{phase} {scope}:"));
                if let Some(total) = s.pull_total {
                    shown.set_length(total);
                }
                shown.set_position(s.pulled as u64);
            }
        });
        (bar, task)
    }

    async fn sync(&self, show_progress: bool) -> anyhow::Result<()> {
        let progress = show_progress.then(|| self.show_progress());
        let result = self.orch.synchronize(&self.scope).await;
        if let Some((bar, task)) = progress {
            task.abort();
            bar.finish_and_clear();
        }
        let report = match result {
            Ok(r) => r,
            Err(e) if e.pauses_scope() => {
                bail!("sync paused: {e} (queued writes are kept; `rcs sync` again once fixed)")
            }
            Err(e) => return Err(e).context("sync failed"),
        };
        println!("pushed: {}", report.pushed);
        println!("pulled: {}", report.pulled);
        println!("conflicts: {}", report.conflicts);
        for c in &report.resolved {
            let outcome = match c.outcome {
                ConflictOutcome::KeptLocal => "kept_local",
                ConflictOutcome::TookRemote => "took_remote",
                _ => "merged",
            };
            println!("conflict: {} {outcome}", c.id);
        }
        println!("parked: {}", report.parked);
        println!("rejected: {}", report.rejected);
        println!("quarantined: {}", report.quarantined);
        Ok(())
    }
}

/// Parses `FIELD OP VALUE`.
fn parse_filter(expr: &str) -> anyhow::Result<Filter> {
    // Longest operators first so `<=` is not read as `<`.
    const OPS: [&str; 7] = ["!=", "<=", ">=", "=", "<", ">", "~"];
    let (pos, op) = OPS
        .iter()
        .filter_map(|op| expr.find(op).map(|p| (p, *op)))
        .min_by_key(|(p, op)| (*p, std::cmp::Reverse(op.len())))
        .with_context(|| format!("filter {expr:?} has no operator (=, !=, <, <=, >, >=, ~)"))?;
    let field = expr[..pos].trim();
    let raw = expr[pos + op.len()..].trim();
    if field.is_empty() {
        bail!("filter {expr:?} has no field");
    }
    let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok(match op {
        "=" => Filter::eq(field, value),
        "!=" => Filter::ne(field, value),
        "<" => Filter::lt(field, value),
        "<=" => Filter::le(field, value),
        ">" => Filter::gt(field, value),
        ">=" => Filter::ge(field, value),
        _ => Filter::contains(field, raw),
    })
}

fn record_from(id: &str, json: &str) -> anyhow::Result<JsonRecord> {
    let value: Value = serde_json::from_str(json).context("the record must be a JSON object")?;
    let Value::Object(mut map) = value else {
        bail!("the record must be a JSON object");
    };
    if let Some(Value::String(other)) = map.get("id")
        && other != id
    {
        bail!("the JSON has id {other:?} but the command names {id:?}");
    }
    map.insert("id".into(), Value::String(id.to_owned()));
    map.remove("deleted_at");
    map.insert(
        "updated_at".into(),
        Value::String(Timestamp::now().to_string()),
    );
    Ok(JsonRecord::from_value(Value::Object(map))?)
}

/// `OP_ID KIND ID attempts=N error=…`, one line.
fn describe_op(op: &PendingOp<JsonRecord>) -> String {
    let kind = match op.kind {
        OpKind::Create => "create",
        OpKind::Update => "update",
        OpKind::Delete => "delete",
    };
    format!(
        "{} {kind} {} attempts={} error={}",
        op.op_id,
        op.id,
        op.attempts,
        op.last_error.as_deref().unwrap_or("-")
    )
}

fn print_record(r: &JsonRecord) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string(&Value::Object(r.value().clone()))?
    );
    Ok(())
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Put {
            conn,
            id,
            json,
            sync,
        } => {
            let c = Client::open(&conn).await?;
            let record = record_from(&id, &json)?;
            let exists = c.local.get_by_id(&c.scope, &id).await?.is_some();
            let op_id = if exists {
                c.orch.enqueue_update(&c.scope, record).await?
            } else {
                c.orch.enqueue_create(&c.scope, record).await?
            };
            println!(
                "queued: {} {op_id}",
                if exists { "update" } else { "create" }
            );
            if sync {
                c.sync(false).await?;
            }
        }
        Command::Delete { conn, id, sync } => {
            let c = Client::open(&conn).await?;
            if c.local.get_by_id(&c.scope, &id).await?.is_none() {
                bail!("no record {id:?} in the cache (run `rcs sync` first?)");
            }
            let op_id = c.orch.enqueue_delete(&c.scope, &id).await?;
            println!("queued: delete {op_id}");
            if sync {
                c.sync(false).await?;
            }
        }
        Command::Get { conn, id, refresh } => {
            let c = Client::open(&conn).await?;
            if refresh {
                c.orch.synchronize(&c.scope).await?;
            }
            match c.orch.get(&c.scope, &id, CachePolicy::OfflineOnly).await? {
                Some(r) => print_record(&r)?,
                None => bail!("not found: {id}"),
            }
        }
        Command::List {
            conn,
            filters,
            order,
            limit,
            refresh,
            online,
        } => {
            let c = Client::open(&conn).await?;
            let mut spec = QuerySpec::new();
            for f in &filters {
                spec = spec.filter(parse_filter(f)?);
            }
            if let Some(o) = order {
                spec = match o.strip_prefix('-') {
                    Some(f) => spec.order_by(f, Direction::Desc),
                    None => spec.order_by(o, Direction::Asc),
                };
            }
            if let Some(n) = limit {
                spec = spec.limit(n);
            }
            let policy = if online {
                CachePolicy::OnlineOnly
            } else {
                if refresh {
                    c.orch.synchronize(&c.scope).await?;
                }
                CachePolicy::OfflineOnly
            };
            for r in c.orch.read(&c.scope, policy, &spec).await? {
                print_record(&r)?;
            }
        }
        Command::Sync { conn, quiet } => {
            let c = Client::open(&conn).await?;
            c.sync(!quiet).await?;
        }
        Command::Reconcile { conn } => {
            let c = Client::open(&conn).await?;
            reconcile::run(&c).await?;
        }
        Command::Status { conn } => {
            let c = Client::open(&conn).await?;
            let status = c.orch.status(&c.scope).await?;
            println!("scope: {}", c.scope);
            println!("pending: {}", status.pending);
            println!("parked: {}", status.parked);
            println!("quarantined: {}", status.quarantined);
            match c.orch.pause(&c.scope).await? {
                Some(p) => println!("paused: since {} ({})", p.since, p.reason),
                None => println!("paused: no"),
            }
            for op in c.orch.parked_ops(&c.scope).await? {
                println!("parked_op: {}", describe_op(&op));
            }
            match c.local.sync_point(&c.scope).await? {
                Some(p) => {
                    println!("last_sync: {}", p.server_time);
                    println!("cursor: {}", p.cursor.as_ref().map_or("-", |c| c.as_str()));
                }
                None => println!("last_sync: never"),
            }
        }
        Command::Ops { conn } => {
            let c = Client::open(&conn).await?;
            for op in c.local.pending_ops(&c.scope, usize::MAX).await? {
                println!("pending {}", describe_op(&op));
            }
            for op in c.orch.parked_ops(&c.scope).await? {
                println!("parked {}", describe_op(&op));
            }
            for q in c.orch.quarantined(&c.scope).await? {
                println!("quarantined {} reason={}", q.id, q.reason);
            }
        }
        Command::Retry {
            conn,
            op_ids,
            all,
            sync,
        } => {
            let c = Client::open(&conn).await?;
            let parked: Vec<OpId> = c
                .orch
                .parked_ops(&c.scope)
                .await?
                .into_iter()
                .map(|o| o.op_id)
                .collect();
            let chosen = if all {
                parked
            } else {
                let wanted: Vec<OpId> = op_ids.into_iter().map(OpId).collect();
                if let Some(missing) = wanted.iter().find(|w| !parked.contains(w)) {
                    bail!(
                        "no parked op {missing} in scope {} (see `rcs ops`)",
                        c.scope
                    );
                }
                wanted
            };
            c.orch.retry_parked(&c.scope, &chosen).await?;
            println!("retried: {}", chosen.len());
            if sync {
                c.sync(false).await?;
            }
        }
        Command::Watch(args) => watch::run(args).await?,
        Command::Discard { conn, op_ids } => {
            let c = Client::open(&conn).await?;
            let mut queued: Vec<OpId> = c
                .local
                .pending_ops(&c.scope, usize::MAX)
                .await?
                .into_iter()
                .map(|o| o.op_id)
                .collect();
            queued.extend(
                c.orch
                    .parked_ops(&c.scope)
                    .await?
                    .into_iter()
                    .map(|o| o.op_id),
            );
            let wanted: Vec<OpId> = op_ids.into_iter().map(OpId).collect();
            if let Some(missing) = wanted.iter().find(|w| !queued.contains(w)) {
                bail!(
                    "no queued op {missing} in scope {} (see `rcs ops`)",
                    c.scope
                );
            }
            c.orch.discard_ops(&c.scope, &wanted).await?;
            println!("discarded: {}", wanted.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use remote_cache_sync::Record;

    #[test]
    fn filters_parse() {
        let f = parse_filter("n>=3").unwrap();
        assert_eq!(f, Filter::ge("n", 3));
        assert_eq!(
            parse_filter("title=hello world").unwrap(),
            Filter::eq("title", "hello world")
        );
        assert_eq!(parse_filter("a!=\"x\"").unwrap(), Filter::ne("a", "x"));
        assert_eq!(parse_filter("t~ell").unwrap(), Filter::contains("t", "ell"));
        assert!(parse_filter("nothing").is_err());
        assert!(parse_filter("=3").is_err());
    }

    #[test]
    fn records_get_id_and_time() {
        let r = record_from("a", r#"{"title":"x"}"#).unwrap();
        assert_eq!(r.id(), "a");
        assert!(record_from("a", r#"{"id":"b"}"#).is_err());
        assert!(record_from("a", "[1]").is_err());
    }
}
