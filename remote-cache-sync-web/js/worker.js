// The worker side of remote-cache-sync's browser API: runs the wasm `RemoteCache` (SQLite on
// OPFS needs a dedicated worker) and answers the page's proxy (remote-cache.js).
// Messages in: { id, method, handle, args }; out: { id, ok, result } or { id, ok: false, error }.
import init, { RemoteCache } from "./remote_cache_sync_web.js";

const ready = init();
const caches = new Map();
let nextHandle = 1;

function asError(err) {
  if (err && typeof err === "object" && typeof err.code === "string") {
    return { code: err.code, message: String(err.message), retryable: !!err.retryable };
  }
  return { code: "other", message: String(err && err.message ? err.message : err), retryable: false };
}

function cacheOf(handle) {
  const cache = caches.get(handle);
  if (!cache) {
    throw { code: "closed", message: "this RemoteCache is closed", retryable: false };
  }
  return cache;
}

const METHODS = new Set(["put", "get", "list", "delete", "sync", "status", "setOnline", "rekey"]);

self.onmessage = async (event) => {
  const { id, method, handle, args = [] } = event.data;
  try {
    await ready;
    let result;
    if (method === "open") {
      const cache = await RemoteCache.open(args[0]);
      result = nextHandle++;
      caches.set(result, cache);
    } else if (method === "close") {
      const cache = caches.get(handle);
      caches.delete(handle);
      if (cache) {
        await cache.close();
        cache.free();
      }
      result = null;
    } else if (METHODS.has(method)) {
      result = await cacheOf(handle)[method](...args);
    } else {
      throw { code: "invalid_input", message: `no method ${method}`, retryable: false };
    }
    self.postMessage({ id, ok: true, result: result === undefined ? null : result });
  } catch (err) {
    self.postMessage({ id, ok: false, error: asError(err) });
  }
};
