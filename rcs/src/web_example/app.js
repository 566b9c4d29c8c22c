// A todo list kept in the browser (SQLite on OPFS, in a worker) and synced with `rcs serve`.
// Settings come from the URL (?remote=&token=&db=&list=) or config.js (written by rcs web-setup).
import { RemoteCache } from "./remote-cache-sync/remote-cache.js";
import { REMOTE, TOKEN } from "./config.js";

const params = new URLSearchParams(location.search);
const settings = {
  remote: params.get("remote") || REMOTE,
  token: params.get("token") || TOKEN,
  database: params.get("db") || "todos.db",
  list: params.get("list") || "home",
};

const $ = (id) => document.getElementById(id);
let cache;

function showError(err) {
  $("error").textContent = err ? `${err.code}: ${err.message}` : "";
  $("error").dataset.code = err ? err.code : "";
}

async function render() {
  const todos = await cache.list({ order_by: [{ field: "created_at" }] });
  const ul = $("todos");
  ul.replaceChildren();
  for (const todo of todos) {
    const li = document.createElement("li");
    li.className = todo.done ? "done" : "";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !!todo.done;
    box.onchange = () => act(() => cache.put({ ...todo, done: box.checked, updated_at: undefined }));
    const text = document.createElement("span");
    text.textContent = todo.title;
    const del = document.createElement("button");
    del.textContent = "✕";
    del.title = "Delete";
    del.onclick = () => act(() => cache.delete(todo.id));
    li.append(box, text, del);
    ul.append(li);
  }
  const s = await cache.status();
  const status = $("status");
  status.dataset.state = "ready";
  status.dataset.pending = String(s.pending);
  status.textContent =
    `${todos.length} todo(s) · ${s.pending} waiting to sync · ${s.online ? "online" : "offline"}` +
    ` · storage: ${s.storage}${s.paused ? ` · paused: ${s.paused}` : ""}`;
}

async function act(f) {
  try {
    await f();
    showError(null);
  } catch (err) {
    showError(err);
  }
  await render().catch(showError);
}

async function sync() {
  try {
    const report = await cache.sync();
    showError(null);
    $("status").dataset.lastSync = JSON.stringify(report);
  } catch (err) {
    showError(err);
  }
  await render().catch(showError);
}

async function main() {
  try {
    cache = await RemoteCache.open({
      database: settings.database,
      remote: settings.remote,
      token: settings.token,
      scope: { name: "todos", keys: { list: settings.list } },
    });
  } catch (err) {
    $("status").dataset.state = "failed";
    $("status").textContent = "could not open the cache";
    showError(err);
    return;
  }
  $("add").onsubmit = (e) => {
    e.preventDefault();
    const title = $("title").value.trim();
    if (!title) return;
    $("title").value = "";
    const now = new Date().toISOString();
    act(() => cache.put({ id: crypto.randomUUID(), title, done: false, created_at: now }));
  };
  $("sync").onclick = sync;
  addEventListener("online", () => render());
  addEventListener("offline", () => render());
  // Refresh what the background sync brought in.
  setInterval(() => render().catch(showError), 2000);
  await sync();
}

main();
