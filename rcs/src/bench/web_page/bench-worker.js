// `rcs bench web`: runs the wasm benchmark (benchWeb) in this dedicated worker.
import init, { benchWeb } from "./remote-cache-sync/remote_cache_sync_web.js";

self.onmessage = async (event) => {
  try {
    await init();
    const result = await benchWeb(event.data);
    self.postMessage({ ok: true, result });
  } catch (err) {
    const error = err && typeof err.code === "string"
      ? { code: err.code, message: String(err.message) }
      : { code: "other", message: String((err && err.message) || err) };
    self.postMessage({ ok: false, error });
  }
};
