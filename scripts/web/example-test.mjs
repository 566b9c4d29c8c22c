// The example page of `rcs web-setup` in headless Chromium (Playwright, Debian's Chromium):
//
// 1. profile A opens the page while `rcs serve` is down: the first sync fails with `unavailable`;
//    a todo is added (offline) and waits in the queue; `offline`/`online` events reach the cache;
// 2. `rcs serve` starts on the remote's port; "Sync" pushes the todo;
// 3. profile B (its own user-data-dir, so its own OPFS) opens the page and sees the todo;
// 4. a second tab of profile A on the same database gets `storage_locked` (one worker holds the
//    OPFS pool); once the first tab is closed, the second opens it and sees the todo.
// Screenshots go to OUT_DIR; their paths are printed.
//
//   RCS_NODE_DIR=target/web-node node scripts/web/example-test.mjs SITE_DIR RCS_BIN OUT_DIR
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

const require = createRequire(path.resolve(process.env.RCS_NODE_DIR || ".", "package.json"));
const { chromium } = require("playwright-core");

const [site, rcs, outArg] = process.argv.slice(2);
const outDir = outArg && path.resolve(outArg);
if (!site || !rcs || !outArg) {
  console.error("usage: example-test.mjs SITE_DIR RCS_BIN OUT_DIR");
  process.exit(2);
}
const TIMEOUT = 30_000;
const TOKEN = `example-${Math.random().toString(36).slice(2)}`;
const TODO = `buy milk (added offline ${new Date().toISOString()})`;

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

function staticServer(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file = path.normalize(path.join(root, decodeURIComponent(url.pathname)));
    if (!file.startsWith(path.normalize(root))) {
      res.writeHead(403).end();
      return;
    }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
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

async function freePort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function startServe(port, origin, db) {
  const child = spawn(
    rcs,
    ["serve", "--listen", `127.0.0.1:${port}`, "--db", db, "--cors-origin", origin],
    { env: { ...process.env, RCS_SERVE_TOKENS: `${TOKEN}:todos,list=*` }, stdio: ["ignore", "pipe", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.once("line", (line) =>
      line.startsWith("listening: ") ? resolve(child) : reject(new Error(`rcs serve: ${line}`)),
    );
    child.once("exit", (code) => reject(new Error(`rcs serve exited with ${code}`)));
  });
}

async function launch(userDataDir) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 800, height: 600 },
  });
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function statusText(page) {
  return page.locator("#status").textContent();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rcs-example-"));
  const files = await staticServer(site);
  const origin = `http://127.0.0.1:${files.address().port}`;
  const remotePort = await freePort();
  const remote = `http://127.0.0.1:${remotePort}`;
  const url = `${origin}/?remote=${encodeURIComponent(remote)}&token=${TOKEN}&db=todos.db&list=home`;
  let serve;
  const contexts = [];
  try {
    // 1. Profile A, remote down.
    const a = await launch(path.join(tmp, "profile-a"));
    contexts.push(a);
    const pageA = await a.newPage();
    pageA.on("console", (m) => console.log(`[page A] ${m.text()}`));
    await pageA.goto(url);
    await pageA.waitForSelector('#status[data-state="ready"]', { timeout: TIMEOUT });
    await pageA.waitForSelector('#error[data-code="unavailable"]', { timeout: TIMEOUT });
    check(true, "first sync with the remote down fails with code unavailable");
    check((await statusText(pageA)).includes("storage: opfs"), "the cache is on OPFS");
    await pageA.fill("#title", TODO);
    await pageA.click('button[type="submit"]');
    await pageA.waitForSelector(`li:has-text("${TODO}")`, { timeout: TIMEOUT });
    await pageA.waitForSelector('#status[data-pending="1"]', { timeout: TIMEOUT });
    check(true, "the todo added offline is listed and waits to sync");
    await a.setOffline(true);
    await pageA.waitForFunction(() => document.querySelector("#status").textContent.includes("offline"), null, { timeout: TIMEOUT });
    check(true, "the offline event reached the cache");
    await a.setOffline(false);
    await pageA.waitForFunction(() => document.querySelector("#status").textContent.includes("· online"), null, { timeout: TIMEOUT });
    check(true, "the online event reached the cache");

    // 2. The remote comes up; sync.
    serve = await startServe(remotePort, origin, path.join(tmp, "server.sqlite"));
    await pageA.click("#sync");
    await pageA.waitForSelector('#status[data-pending="0"]', { timeout: TIMEOUT });
    const error = await pageA.locator("#error").textContent();
    check(error === "", `sync succeeded (error line: ${JSON.stringify(error)})`);
    const shotA = path.join(outDir, "example-profile-a.png");
    await pageA.screenshot({ path: shotA });

    // 3. Profile B sees it.
    const b = await launch(path.join(tmp, "profile-b"));
    contexts.push(b);
    const pageB = await b.newPage();
    pageB.on("console", (m) => console.log(`[page B] ${m.text()}`));
    await pageB.goto(url);
    await pageB.waitForSelector(`li:has-text("${TODO}")`, { timeout: TIMEOUT });
    check(true, "a second browser profile sees the synced todo");
    const shotB = path.join(outDir, "example-profile-b.png");
    await pageB.screenshot({ path: shotB });

    // 4. Two tabs of profile A on one database.
    const pageA2 = await a.newPage();
    await pageA2.goto(url);
    await pageA2.waitForSelector('#status[data-state="failed"]', { timeout: TIMEOUT });
    const code = await pageA2.locator("#error").getAttribute("data-code");
    check(code === "storage_locked", `a second tab on the same database is refused (code ${code})`);
    await pageA.close();
    let opened = false;
    for (let i = 0; i < 20 && !opened; i++) {
      await pageA2.reload();
      await pageA2.waitForSelector('#status[data-state="ready"], #status[data-state="failed"]', { timeout: TIMEOUT });
      opened = (await pageA2.locator("#status").getAttribute("data-state")) === "ready";
      if (!opened) await new Promise((r) => setTimeout(r, 250));
    }
    check(opened, "once the first tab is closed, the second opens the database");
    await pageA2.waitForSelector(`li:has-text("${TODO}")`, { timeout: TIMEOUT });
    check(true, "the second tab sees the todo, nothing was lost");

    console.log(`screenshot: ${shotB}`);
    console.log(`screenshot: ${shotA}`);
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    files.close();
    if (serve) serve.kill("SIGTERM");
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => console.log("example page test: ok"),
  (err) => {
    console.error(`example page test FAILED: ${err.stack || err}`);
    process.exit(1);
  },
);
