// remote-cache-sync in the browser: the page-side API. `RemoteCache.open` starts a dedicated
// worker (worker.js, where SQLite on OPFS runs) and returns a proxy whose methods post to it.
// Every method returns a Promise; failures reject with { code, message, retryable }.

let nextCall = 1;

class Channel {
  constructor(worker) {
    this.worker = worker;
    this.calls = new Map();
    worker.onmessage = (event) => {
      const { id, ok, result, error } = event.data;
      const call = this.calls.get(id);
      if (!call) return;
      this.calls.delete(id);
      if (ok) call.resolve(result);
      else call.reject(error);
    };
    worker.onerror = (event) => {
      const error = { code: "worker", message: `the worker failed: ${event.message || "cannot load it"}`, retryable: false };
      for (const call of this.calls.values()) call.reject(error);
      this.calls.clear();
    };
  }

  call(method, handle, args) {
    const id = nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.worker.postMessage({ id, method, handle, args });
    });
  }
}

export class RemoteCache {
  constructor(channel, handle) {
    this._channel = channel;
    this._handle = handle;
    this._onOnline = () => this._call("setOnline", [true]).catch(() => {});
    this._onOffline = () => this._call("setOnline", [false]).catch(() => {});
    if (typeof window !== "undefined") {
      window.addEventListener("online", this._onOnline);
      window.addEventListener("offline", this._onOffline);
    }
  }

  /**
   * Opens a cache: `{ database, remote, scope, token, key, syncIntervalMs, workerUrl }`.
   * `database` is an OPFS file name (e.g. "todos.db") or ":memory:". With `key` the OPFS
   * database is encrypted; a wrong key rejects with code `wrong_key`, a missing one with
   * `key_required`.
   */
  static async open(options) {
    const { workerUrl, ...rest } = options || {};
    const url = workerUrl || new URL("./worker.js", import.meta.url);
    const channel = new Channel(new Worker(url, { type: "module" }));
    try {
      const handle = await channel.call("open", 0, [rest]);
      const cache = new RemoteCache(channel, handle);
      if (typeof navigator !== "undefined" && navigator.onLine === false) cache._onOffline();
      return cache;
    } catch (err) {
      channel.worker.terminate();
      throw err;
    }
  }

  _call(method, args) {
    return this._channel.call(method, this._handle, args);
  }

  put(record) { return this._call("put", [record]); }
  get(id) { return this._call("get", [id]); }
  list(query) { return this._call("list", [query ?? null]); }
  delete(id) { return this._call("delete", [id]); }
  sync() { return this._call("sync", []); }
  status() { return this._call("status", []); }
  setOnline(online) { return this._call("setOnline", [!!online]); }
  /** Changes the key of an encrypted cache (the next `open` needs `newKey`). */
  rekey(newKey) { return this._call("rekey", [newKey]); }

  async close() {
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this._onOnline);
      window.removeEventListener("offline", this._onOffline);
    }
    try {
      await this._call("close", []);
    } finally {
      this._channel.worker.terminate();
    }
  }
}
