//! `benchWeb(options)`: the browser side of `rcs bench web` (wasm32 only; not part of the
//! documented API). Runs in a dedicated worker, on OPFS:
//!
//! 1. initial sync: a fresh OPFS cache pulls the whole scope from the remote through the
//!    orchestrator (network, decoding and apply; `web_initial_sync_rows_per_s`);
//! 2. apply: the same pages (fetched beforehand, held in memory) applied with `apply_remote`
//!    against a raw batched upsert (`INSERT ... ON CONFLICT DO UPDATE`, a cached statement, one
//!    transaction per page, JSON encoding inside the timed region) into a table shaped like the
//!    store's, in the same OPFS database through a second connection, alternating page for page
//!    and who goes first (`web_apply_ratio` = raw time / our time);
//! 3. with `encrypted: true`, the same pages applied by two stores, one on a plain OPFS database
//!    and one on an encrypted one (SQLite3 Multiple Ciphers, SQLCipher scheme), alternating page
//!    for page (`web_encryption_ratio` = encrypted time / plain time), and the time to open the
//!    encrypted one (the key derivation).

use std::time::Duration;

use js_sys::Promise;
use remote_cache_sync::local::sqlite::SqliteLocalStore;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    Cursor, Delta, Error, JsonRecord, LocalStore, Orchestrator, Record, RemoteStore, SyncPoint,
    SyncScope,
};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::convert::{from_json, reject, to_json};

const RAW_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS raw_items (
        scope TEXT NOT NULL, id TEXT NOT NULL, data TEXT, updated_at INTEGER NOT NULL,
        deleted_at INTEGER, synced_version INTEGER, PRIMARY KEY (scope, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS raw_items_since ON raw_items (scope, updated_at, id)
        WHERE deleted_at IS NULL;
";

const RAW_UPSERT: &str = "INSERT INTO raw_items (scope, id, data, updated_at, synced_version) \
     VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (scope, id) DO UPDATE SET data = excluded.data, \
     updated_at = excluded.updated_at, synced_version = excluded.synced_version";

fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            now.dyn_into::<js_sys::Function>().ok()?.call0(&p).ok()
        })
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage {
        kind: remote_cache_sync::StorageErrorKind::Other,
        message: e.to_string(),
    }
}

/// Runs the benchmark: `{ remote, token, scope: { name, keys }, page, encrypted }`. Resolves
/// with `{ rows, sync_ms, apply_ours_ms, apply_raw_ms, pages, wasm_memory_bytes }`, and with
/// `encrypted`, `{ apply_plain_ms, apply_encrypted_ms, encrypted_open_ms, encrypted_rows }`.
#[wasm_bindgen(js_name = benchWeb)]
pub fn bench_web(options: JsValue) -> Promise {
    let options = match to_json(&options) {
        Ok(v) => v,
        Err(e) => return Promise::reject(&e),
    };
    future_to_promise(async move { run(options).await.map_err(|e| reject(&e)) })
}

async fn run(options: Value) -> Result<JsValue, Error> {
    let text = |k: &str| options[k].as_str().unwrap_or_default().to_owned();
    let scope: SyncScope = serde_json::from_value(options["scope"].clone())
        .map_err(|e| Error::InvalidScope(e.to_string()))?;
    let page = options["page"].as_u64().unwrap_or(1_000) as usize;
    let remote = std::sync::Arc::new(
        HttpRemoteStore::<JsonRecord>::builder(text("remote"))
            .token(text("token"))
            .timeout(Duration::from_secs(120))
            .build()?,
    );
    let run_id = uuid_like();

    // 1. Initial sync into a fresh OPFS cache.
    let sync_db = format!("bench-sync-{run_id}.db");
    let app = Orchestrator::builder(
        SqliteLocalStore::<JsonRecord>::open_opfs(&sync_db).await?,
        remote.clone(),
    )
    .pull_page_size(page)
    .sync_after_write(false)
    .build();
    let start = now_ms();
    let report = app.synchronize(&scope).await?;
    let sync_ms = now_ms() - start;
    app.shutdown().await;
    drop(app);
    SqliteLocalStore::<JsonRecord>::delete_opfs(&sync_db).await?;

    // 2. The same pages, fetched first, applied by the store and by raw SQL.
    let mut pages: Vec<Delta<JsonRecord>> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let delta = remote.fetch_since(&scope, cursor.as_ref(), page).await?;
        cursor = delta.cursor.clone();
        let more = delta.has_more;
        pages.push(delta);
        if !more {
            break;
        }
    }
    let rows: usize = pages.iter().map(|p| p.upserts.len()).sum();
    let apply_db = format!("bench-apply-{run_id}.db");
    let store = SqliteLocalStore::<JsonRecord>::open_opfs(&apply_db).await?;
    let uri = store
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut raw = Connection::open(&uri).map_err(storage)?;
    raw.execute_batch(RAW_SCHEMA).map_err(storage)?;
    let canonical = scope.canonical();
    let (mut ours, mut raws) = (0.0, 0.0);
    for (i, p) in pages.iter().enumerate() {
        let point = SyncPoint {
            cursor: p.cursor.clone(),
            server_time: p.server_time,
        };
        for side in [i % 2, 1 - i % 2] {
            let start = now_ms();
            if side == 0 {
                store.apply_remote(&scope, p, &point).await?;
                ours += now_ms() - start;
            } else {
                raw_page(&mut raw, &canonical, &p.upserts).map_err(storage)?;
                raws += now_ms() - start;
            }
        }
    }
    let count: i64 = raw
        .query_row("SELECT count(*) FROM raw_items", [], |r| r.get(0))
        .map_err(storage)?;
    drop(raw);
    drop(store);
    SqliteLocalStore::<JsonRecord>::delete_opfs(&apply_db).await?;
    let encryption = if options["encrypted"].as_bool() == Some(true) {
        Some(encrypted_apply(&scope, &pages, &run_id).await?)
    } else {
        None
    };
    let wasm_memory_bytes = core::arch::wasm32::memory_size::<0>() * 65_536;
    let mut result = json!({
        "rows": rows,
        "pulled": report.pulled,
        "raw_rows": count,
        "pages": pages.len(),
        "sync_ms": sync_ms,
        "apply_ours_ms": ours,
        "apply_raw_ms": raws,
        "wasm_memory_bytes": wasm_memory_bytes,
    });
    if let (Some(Value::Object(e)), Value::Object(r)) = (encryption, &mut result) {
        r.extend(e);
    }
    Ok(from_json(&result))
}

/// Step 3: the pages applied to a plain and to an encrypted OPFS store, alternating.
async fn encrypted_apply(
    scope: &SyncScope,
    pages: &[Delta<JsonRecord>],
    run_id: &str,
) -> Result<Value, Error> {
    let plain_db = format!("bench-plain-{run_id}.db");
    let secret_db = format!("bench-secret-{run_id}.db");
    let plain = SqliteLocalStore::<JsonRecord>::open_opfs(&plain_db).await?;
    let start = now_ms();
    let secret = SqliteLocalStore::<JsonRecord>::opfs_builder(&secret_db)
        .key(format!("bench key {run_id}"))
        .open()
        .await?;
    let open_ms = now_ms() - start;
    let (mut plain_ms, mut secret_ms) = (0.0, 0.0);
    for (i, p) in pages.iter().enumerate() {
        let point = SyncPoint {
            cursor: p.cursor.clone(),
            server_time: p.server_time,
        };
        for side in [i % 2, 1 - i % 2] {
            let start = now_ms();
            if side == 0 {
                plain.apply_remote(scope, p, &point).await?;
                plain_ms += now_ms() - start;
            } else {
                secret.apply_remote(scope, p, &point).await?;
                secret_ms += now_ms() - start;
            }
        }
    }
    let rows = secret.reconcile_rows(scope).await?.len();
    drop((plain, secret));
    SqliteLocalStore::<JsonRecord>::delete_opfs(&plain_db).await?;
    SqliteLocalStore::<JsonRecord>::delete_opfs(&secret_db).await?;
    Ok(json!({
        "apply_plain_ms": plain_ms,
        "apply_encrypted_ms": secret_ms,
        "encrypted_open_ms": open_ms,
        "encrypted_rows": rows,
    }))
}

fn raw_page(conn: &mut Connection, scope: &str, rows: &[JsonRecord]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(RAW_UPSERT)?;
        for r in rows {
            let json = serde_json::to_string(r).unwrap_or_default();
            let version = r.updated_at().as_millisecond();
            stmt.execute(params![scope, r.id(), json, version])?;
        }
    }
    tx.commit()
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 1e12) as u64
    )
}
