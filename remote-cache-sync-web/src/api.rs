//! `RemoteCache`: the class JavaScript sees (wasm32 only).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise, Reflect};
use remote_cache_sync::local::sqlite::{EncryptionKey, SqliteLocalStore};
use remote_cache_sync::orchestrator::BackgroundSync;
use remote_cache_sync::remote::http::HttpRemoteStore;
use remote_cache_sync::{
    CachePolicy, Error, JsonRecord, LocalStore, Orchestrator, QuerySpec, SyncScope,
};
use serde_json::{Map, Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::convert::{from_json, js_error, reject, to_json};

/// The database name that asks for a cache in memory (nothing kept across reloads).
const MEMORY: &str = ":memory:";
/// Default period of the background sync.
const DEFAULT_SYNC_INTERVAL_MS: f64 = 30_000.0;

/// What `RemoteCache.open` accepts.
struct OpenOptions {
    database: String,
    remote: String,
    scope: SyncScope,
    token: Option<String>,
    /// The encryption key of the OPFS database (never logged, never in an error).
    key: Option<EncryptionKey>,
    sync_interval: Option<Duration>,
}

impl OpenOptions {
    fn parse(options: &JsValue) -> Result<OpenOptions, JsValue> {
        let Value::Object(mut o) = to_json(options)? else {
            return Err(js_error(
                "invalid_input",
                "RemoteCache.open takes an object { database, remote, scope, token, key }",
                false,
            ));
        };
        let mut text = |key: &str, required: bool| -> Result<Option<String>, JsValue> {
            match o.remove(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
                None | Some(Value::Null) if !required => Ok(None),
                _ => Err(js_error(
                    "invalid_input",
                    &format!("option {key:?} must be a non-empty string"),
                    false,
                )),
            }
        };
        let database = text("database", true)?.unwrap_or_default();
        let remote = text("remote", true)?.unwrap_or_default();
        let token = text("token", false)?;
        let key = text("key", false)?.map(EncryptionKey::new);
        if key.is_some() && database == MEMORY {
            return Err(js_error(
                "invalid_input",
                "option \"key\" encrypts an OPFS database; \":memory:\" keeps nothing to encrypt",
                false,
            ));
        }
        let scope = match o.remove("scope") {
            Some(Value::String(name)) => SyncScope::new(name, Vec::<(String, String)>::new()),
            Some(v @ Value::Object(_)) => serde_json::from_value(v)
                .map_err(|e| Error::InvalidScope(format!("{{ name, keys }} expected: {e}"))),
            _ => Err(Error::InvalidScope(
                "option \"scope\" must be a name or { name, keys }".into(),
            )),
        }
        .map_err(|e| reject(&e))?;
        let sync_interval = match o.remove("syncIntervalMs") {
            None | Some(Value::Null) => Some(DEFAULT_SYNC_INTERVAL_MS),
            Some(Value::Number(n)) => n.as_f64().filter(|ms| *ms >= 0.0),
            Some(_) => None,
        };
        let Some(ms) = sync_interval else {
            return Err(js_error(
                "invalid_input",
                "option \"syncIntervalMs\" must be a number >= 0 (0: no background sync)",
                false,
            ));
        };
        Ok(OpenOptions {
            database,
            remote,
            scope,
            token,
            key,
            sync_interval: (ms > 0.0).then(|| Duration::from_millis(ms as u64)),
        })
    }
}

/// An event listener kept alive while it is registered.
type Listener = Closure<dyn FnMut(JsValue)>;

struct Inner {
    app: Orchestrator<JsonRecord>,
    /// The store under `app`, for `rekey`.
    local: SqliteLocalStore<JsonRecord>,
    scope: SyncScope,
    storage: &'static str,
    background: RefCell<Option<BackgroundSync>>,
    online: Cell<bool>,
    /// The `online`/`offline` listeners on the worker's (or page's) global scope.
    listeners: RefCell<Vec<(&'static str, Listener)>>,
}

impl Inner {
    fn set_online(&self, online: bool) {
        self.online.set(online);
        if let Some(bg) = self.background.borrow().as_ref() {
            bg.set_online(online);
        }
    }
}

/// A local cache of one scope of remote records (JSON objects with a string `id`), kept in
/// SQLite on OPFS and synced with an HTTP remote (`rcs serve`). Run it in a dedicated worker.
#[wasm_bindgen]
pub struct RemoteCache {
    inner: Rc<Inner>,
}

fn promise<F>(f: F) -> Promise
where
    F: Future<Output = Result<JsValue, Error>> + 'static,
{
    future_to_promise(async move { f.await.map_err(|e| reject(&e)) })
}

fn global_call(method: &str, event: &str, listener: &JsValue) {
    let global = js_sys::global();
    if let Ok(f) = Reflect::get(&global, &method.into()).and_then(|f| f.dyn_into::<Function>()) {
        let _ = f.call2(&global, &event.into(), listener);
    }
}

/// `navigator.onLine`, `true` where there is none.
fn navigator_online() -> bool {
    Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"onLine".into()))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

#[wasm_bindgen]
impl RemoteCache {
    /// `RemoteCache.open({ database, remote, scope, token, key, syncIntervalMs })`: opens
    /// (creating) the OPFS database `database` (`":memory:"` for a cache in memory), syncing
    /// `scope` (`"name"` or `{ name, keys }`) with the remote at URL `remote`, authenticated
    /// with `token`. With `key` the database is encrypted (SQLite3 Multiple Ciphers, SQLCipher
    /// scheme): a new one is created encrypted, an existing one must have that key (`wrong_key`
    /// otherwise; an encrypted one opened without a key rejects with `key_required`). Starts a
    /// background sync every `syncIntervalMs` (default 30000; 0 for none) that follows the
    /// `online`/`offline` events.
    pub fn open(options: JsValue) -> Promise {
        let options = match OpenOptions::parse(&options) {
            Ok(o) => o,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            RemoteCache::open_with(options)
                .await
                .map(JsValue::from)
                .map_err(|e| reject(&e))
        })
    }

    async fn open_with(options: OpenOptions) -> Result<RemoteCache, Error> {
        let mut remote = HttpRemoteStore::<JsonRecord>::builder(options.remote);
        if let Some(token) = options.token {
            remote = remote.token(token);
        }
        let remote = remote.build()?;
        let encrypted = options.key.is_some();
        let (local, storage) = if options.database == MEMORY {
            (SqliteLocalStore::open_in_memory().await?, "memory")
        } else {
            let mut builder = SqliteLocalStore::opfs_builder(&options.database);
            if let Some(key) = options.key {
                builder = builder.key(key);
            }
            (builder.open().await?, "opfs")
        };
        tracing::info!(storage, encrypted, "RemoteCache opened");
        let app = Orchestrator::new(local.clone(), remote);
        let inner = Rc::new(Inner {
            background: RefCell::new(
                options
                    .sync_interval
                    .map(|every| app.start_background_sync(vec![options.scope.clone()], every)),
            ),
            app,
            local,
            scope: options.scope,
            storage,
            online: Cell::new(true),
            listeners: RefCell::new(Vec::new()),
        });
        inner.set_online(navigator_online());
        for (event, online) in [("online", true), ("offline", false)] {
            let weak = Rc::downgrade(&inner);
            let listener = Listener::new(move |_event: JsValue| {
                if let Some(inner) = weak.upgrade() {
                    inner.set_online(online);
                }
            });
            global_call("addEventListener", event, listener.as_ref());
            inner.listeners.borrow_mut().push((event, listener));
        }
        Ok(RemoteCache { inner })
    }

    /// Writes a record (a JSON object with a string `id`; `updated_at` is set to now when
    /// missing) to the cache and queues it for the remote. Resolves with the record as stored.
    pub fn put(&self, record: JsValue) -> Promise {
        let inner = self.inner.clone();
        let value = match to_json(&record) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                return Promise::reject(&js_error(
                    "invalid_input",
                    "a record must be an object",
                    false,
                ));
            }
            Err(e) => return Promise::reject(&e),
        };
        promise(async move {
            let record = JsonRecord::from_value(Value::Object(with_version(value)))?;
            let id = remote_cache_sync::Record::id(&record).to_owned();
            let exists = inner
                .app
                .local()
                .get_by_id(&inner.scope, &id)
                .await?
                .is_some();
            if exists {
                inner.app.enqueue_update(&inner.scope, record).await?;
            } else {
                inner.app.enqueue_create(&inner.scope, record).await?;
            }
            let stored = inner.app.local().get_by_id(&inner.scope, &id).await?;
            Ok(stored.map_or(JsValue::NULL, |r| record_to_js(&r)))
        })
    }

    /// The cached record `id`, or `null`. Never touches the network.
    pub fn get(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let record = inner
                .app
                .get(&inner.scope, &id, CachePolicy::OfflineOnly)
                .await?;
            Ok(record.map_or(JsValue::NULL, |r| record_to_js(&r)))
        })
    }

    /// The cached records matching `query` (`{ filters: [{ field, op, value }], order_by:
    /// [{ field, direction }], limit, offset }`, all optional), as an array. Never touches the
    /// network.
    pub fn list(&self, query: JsValue) -> Promise {
        let inner = self.inner.clone();
        let spec = match to_json(&query) {
            Ok(Value::Null) => Ok(QuerySpec::new()),
            Ok(v) => serde_json::from_value::<QuerySpec>(v)
                .map_err(|e| reject(&Error::InvalidQuery(e.to_string()))),
            Err(e) => Err(e),
        };
        let spec = match spec {
            Ok(s) => s,
            Err(e) => return Promise::reject(&e),
        };
        promise(async move {
            let rows = inner
                .app
                .read(&inner.scope, CachePolicy::OfflineOnly, &spec)
                .await?;
            let array = js_sys::Array::new();
            for r in &rows {
                array.push(&record_to_js(r));
            }
            Ok(array.into())
        })
    }

    /// Deletes the record `id` (a tombstone queued for the remote).
    pub fn delete(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.app.enqueue_delete(&inner.scope, &id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Pushes the queue and pulls the remote's changes now. Resolves with `{ pushed, pulled,
    /// conflicts, parked, rejected, quarantined }`.
    pub fn sync(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let report = inner.app.synchronize(&inner.scope).await?;
            Ok(from_json(&json!({
                "pushed": report.pushed,
                "pulled": report.pulled,
                "conflicts": report.conflicts,
                "parked": report.parked,
                "rejected": report.rejected,
                "quarantined": report.quarantined,
            })))
        })
    }

    /// `{ pending, parked, quarantined, paused, online, storage }`: writes waiting for the
    /// remote, writes it refused, remote rows that did not decode, why the scope is paused
    /// (`null` when it is not), the connectivity hint, and where the cache lives (`"opfs"` or
    /// `"memory"`).
    pub fn status(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let status = inner.app.status(&inner.scope).await?;
            let pause = inner.app.pause(&inner.scope).await?;
            Ok(from_json(&json!({
                "pending": status.pending,
                "parked": status.parked,
                "quarantined": status.quarantined,
                "paused": pause.map(|p| p.reason),
                "online": inner.online.get(),
                "storage": inner.storage,
            })))
        })
    }

    /// Connectivity hint, for hosts where the `online`/`offline` events do not reach the
    /// worker (the page's proxy forwards them): offline, the background sync does not try the
    /// network; back online, it syncs at once.
    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) {
        self.inner.set_online(online);
    }

    /// Changes the key of an encrypted cache to `newKey` (a non-empty string): every page is
    /// re-encrypted in one transaction (an interruption leaves the old key valid); the next
    /// `open` needs the new key. A cache opened without a key rejects with `invalid_input`.
    pub fn rekey(&self, new_key: JsValue) -> Promise {
        let inner = self.inner.clone();
        let Some(new_key) = new_key.as_string().filter(|k| !k.is_empty()) else {
            return Promise::reject(&js_error(
                "invalid_input",
                "rekey takes the new key, a non-empty string",
                false,
            ));
        };
        promise(async move {
            inner.local.rekey(new_key).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops the background sync and closes the database (queued writes stay in it).
    pub fn close(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            if let Some(bg) = inner.background.borrow_mut().take() {
                bg.stop();
            }
            for (event, listener) in inner.listeners.borrow_mut().drain(..) {
                global_call("removeEventListener", event, listener.as_ref());
            }
            inner.app.shutdown().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// The record with `updated_at` set to now when it has none.
fn with_version(mut value: Map<String, Value>) -> Map<String, Value> {
    if matches!(value.get("updated_at"), None | Some(Value::Null)) {
        value.insert(
            "updated_at".into(),
            Value::String(remote_cache_sync::Timestamp::now().to_string()),
        );
    }
    value
}

fn record_to_js(record: &JsonRecord) -> JsValue {
    from_json(&Value::Object(record.value().clone()))
}
