// Encryption at rest through the JavaScript API, in headless Chromium (Playwright, Debian's
// Chromium, a fresh profile, real OPFS), with the package `rcs web-setup` wrote:
//
// 1. the control: a cache opened without `key`, records written, closed: the OPFS file's bytes
//    (read from the page with the OPFS API: the pool's files under `.opfs-sahpool/.opaque/`,
//    each a 4 KiB header naming the database, then the database) contain the records' text;
// 2. the same with `key`: the bytes contain none of it, nor SQLite's header; reopening with the
//    key reads every record back;
// 3. a wrong key rejects with `wrong_key`, no key with `key_required`, a key on the plain cache
//    with `wrong_key`, a key with ":memory:" and an empty key with `invalid_input`; the file's
//    bytes are unchanged and the right key still reads everything;
// 4. `rekey`: the old key then fails with `wrong_key`, the new one reads everything, and the
//    file still holds no plaintext.
//
//   RCS_NODE_DIR=target/web-node node scripts/web/encryption-test.mjs SITE_DIR
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

const require = createRequire(path.resolve(process.env.RCS_NODE_DIR || ".", "package.json"));
const { chromium } = require("playwright-core");

const [site] = process.argv.slice(2);
if (!site) {
  console.error("usage: encryption-test.mjs SITE_DIR");
  process.exit(2);
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
};

function staticServer(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const file = path.normalize(path.join(root, decodeURIComponent(url.pathname)));
    if (!file.startsWith(path.normalize(root))) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": MIME[path.extname(file)] || "application/octet-stream" });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// Runs in the page: the helpers the steps use, on `window.t`.
async function installHelpers() {
  const { RemoteCache } = await import("/remote-cache-sync/remote-cache.js");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Nothing listens there: every record stays queued, nothing leaves the page.
  const REMOTE = "http://127.0.0.1:9";
  const MARKER = "plaintext-marker-c41d2e";
  // A closed cache's worker is terminated; its OPFS handles go a moment later.
  async function open(database, key) {
    const options = { database, remote: REMOTE, scope: "notes", syncIntervalMs: 0 };
    if (key !== undefined) options.key = key;
    for (let i = 0; ; i++) {
      try {
        return { cache: await RemoteCache.open(options) };
      } catch (err) {
        if (err.code !== "storage_locked" || i >= 50) return { error: err };
        await sleep(100);
      }
    }
  }
  async function openOk(database, key) {
    const { cache, error } = await open(database, key);
    if (error) throw new Error(`open ${database}: ${error.code}: ${error.message}`);
    return cache;
  }
  async function fill(database, key) {
    const cache = await openOk(database, key);
    for (let i = 0; i < 20; i++) {
      await cache.put({ id: `note-${i}`, title: `${MARKER} number ${i}` });
    }
    await cache.close();
  }
  async function read(database, key) {
    const cache = await openOk(database, key);
    const rows = await cache.list();
    await cache.close();
    return rows.filter((r) => String(r.title).startsWith(MARKER)).length;
  }
  async function openCode(database, key) {
    const { cache, error } = await open(database, key);
    if (cache) {
      await cache.close();
      return "opened";
    }
    return error.code;
  }
  async function rekey(database, key, newKey) {
    const cache = await openOk(database, key);
    try {
      await cache.rekey(newKey);
    } finally {
      await cache.close();
    }
  }
  // The bytes of OPFS database `database` as the pool stores them (after its 4 KiB header),
  // read with the OPFS API from the page.
  async function opfsBytes(database) {
    const root = await navigator.storage.getDirectory();
    const pool = await root.getDirectoryHandle(".opfs-sahpool");
    const opaque = await pool.getDirectoryHandle(".opaque");
    const want = `/${database}`;
    for await (const [, handle] of opaque.entries()) {
      if (handle.kind !== "file") continue;
      let bytes;
      for (let i = 0; ; i++) {
        try {
          bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
          break;
        } catch (err) {
          // Still held by a worker that is shutting down.
          if (i >= 50) throw err;
          await sleep(100);
        }
      }
      if (bytes.length < 4096) continue;
      const end = bytes.subarray(0, 512).indexOf(0);
      const name = new TextDecoder().decode(bytes.subarray(0, end < 0 ? 512 : end));
      if (name === want) return bytes.subarray(4096);
    }
    throw new Error(`no OPFS file for ${want}`);
  }
  function contains(bytes, text) {
    const needle = new TextEncoder().encode(text);
    outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
      for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  }
  async function scan(database) {
    const bytes = await opfsBytes(database);
    let hash = 0;
    for (const b of bytes) hash = (Math.imul(hash, 31) + b) | 0;
    return {
      length: bytes.length,
      hash,
      marker: contains(bytes, MARKER),
      id: contains(bytes, "note-1"),
      header: contains(bytes, "SQLite format 3"),
    };
  }
  window.t = { fill, read, openCode, rekey, scan };
}

async function main() {
  fs.writeFileSync(path.join(site, "encryption-test.html"), "<!doctype html><title>encryption test</title>\n");
  const files = await staticServer(site);
  const origin = `http://127.0.0.1:${files.address().port}`;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rcs-encryption-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const page = await context.newPage();
    page.on("console", (m) => console.log(`[page] ${m.text()}`));
    await page.goto(`${origin}/encryption-test.html`);
    await page.evaluate(installHelpers);
    const run = (fn, ...args) => page.evaluate(([f, a]) => window.t[f](...a), [fn, args]);

    // 1. The control.
    await run("fill", "plain.db");
    const plain = await run("scan", "plain.db");
    check(plain.marker && plain.id && plain.header, `without a key the OPFS file holds the records' text and SQLite's header (${plain.length} bytes)`);

    // 2. Encrypted.
    const K1 = "correct horse battery staple";
    await run("fill", "secret.db", K1);
    const secret = await run("scan", "secret.db");
    check(secret.length >= 8192, `the encrypted OPFS file has the data (${secret.length} bytes)`);
    check(!secret.marker && !secret.id, "with a key the OPFS file holds none of the records' text");
    check(!secret.header, "with a key the OPFS file has no plain SQLite header");
    check((await run("read", "secret.db", K1)) === 20, "reopened with the key, all 20 records read back");

    // 3. Wrong, missing and misplaced keys.
    const before = await run("scan", "secret.db");
    let code = await run("openCode", "secret.db", "a wrong key");
    check(code === "wrong_key", `a wrong key rejects with wrong_key (got ${code})`);
    code = await run("openCode", "secret.db");
    check(code === "key_required", `no key on the encrypted cache rejects with key_required (got ${code})`);
    code = await run("openCode", "plain.db", K1);
    check(code === "wrong_key", `a key on a plain cache rejects with wrong_key (got ${code})`);
    code = await run("openCode", "secret.db", "");
    check(code === "invalid_input", `an empty key rejects with invalid_input (got ${code})`);
    code = await run("openCode", ":memory:", K1);
    check(code === "invalid_input", `a key with ":memory:" rejects with invalid_input (got ${code})`);
    const after = await run("scan", "secret.db");
    check(after.length === before.length && after.hash === before.hash, "the failed opens left the file's bytes unchanged");
    check((await run("read", "secret.db", K1)) === 20, "the right key still reads all 20 records");
    check((await run("read", "plain.db")) === 20, "the plain cache still opens without a key");

    // 4. Rekey.
    const K2 = "a new passphrase";
    await run("rekey", "secret.db", K1, K2);
    code = await run("openCode", "secret.db", K1);
    check(code === "wrong_key", `after rekey the old key rejects with wrong_key (got ${code})`);
    check((await run("read", "secret.db", K2)) === 20, "after rekey the new key reads all 20 records");
    const rekeyed = await run("scan", "secret.db");
    check(!rekeyed.marker && !rekeyed.id && !rekeyed.header, "after rekey the OPFS file still holds no plaintext");
  } finally {
    await context.close().catch(() => {});
    files.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  () => console.log("encryption test: ok"),
  (err) => {
    console.error(`encryption test FAILED: ${err.stack || err}`);
    process.exit(1);
  },
);
