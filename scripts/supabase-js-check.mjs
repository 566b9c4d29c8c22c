// The official client, @supabase/supabase-js, against the Supabase stand-in
// (scripts/start-supabase.sh): shows the stand-in accepts what real clients send, and that the
// requests the adapter builds (filters, keyset, RPC bodies, headers) are the ones the official
// client builds for the same calls.
//
// Usage: node scripts/supabase-js-check.mjs   (env from scripts/start-supabase.sh; the package
// is resolved from NODE_PATH, which scripts/test.sh points at its install)
// Prints `N passed, M failed` and exits non-zero on a failure.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const { createClient } = require("@supabase/supabase-js");

const url = process.env.RCS_TEST_SUPABASE_URL;
const anon = process.env.RCS_TEST_SUPABASE_ANON_KEY;
if (!url || !anon) {
  console.error("RCS_TEST_SUPABASE_URL / RCS_TEST_SUPABASE_ANON_KEY are not set");
  process.exit(1);
}

// Every request the client makes, for comparing with the adapter's.
const sent = [];
const recordingFetch = async (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  sent.push({ method: init.method || "GET", url: String(input), headers, body: init.body });
  return fetch(input, init);
};
// Node 20 has no global WebSocket, which the (unused) realtime client wants at construction.
class NoWebSocket {}
const client = () =>
  createClient(url, anon, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { fetch: recordingFetch },
    realtime: { transport: NoWebSocket },
  });

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// The adapter's quoting (remote::supabase::filter::quote): double quotes, `\` before `\` and `"`.
const quote = (v) => `"${v.replace(/[\\"]/g, (c) => "\\" + c)}"`;

const sb = client();
const email = `js${Date.now()}${Math.floor(Math.random() * 1e6)}@example.com`;
let session;
const tag = `js${Date.now()}`;
const scope = JSON.stringify(["records", { owner: tag }]);

await check("auth.signUp returns a session", async () => {
  const { data, error } = await sb.auth.signUp({ email, password: "password-123" });
  assert.equal(error, null);
  assert.ok(data.session.access_token);
  session = data.session;
});

await check("signInWithPassword", async () => {
  const { data, error } = await sb.auth.signInWithPassword({ email, password: "password-123" });
  assert.equal(error, null);
  assert.equal(data.user.email, email);
  session = data.session;
});

await check("rpc rcs_push / rcs_pull as the user (the adapter's exact-mode calls)", async () => {
  const op = {
    op_id: `op-${tag}`, id: "r1", base_version: null, version: "2026-01-01T00:00:00Z",
    deleted: false, data: { id: "r1", title: "from js", n: 1, updated_at: "2026-01-01T00:00:00Z" },
  };
  let r = await sb.rpc("rcs_push", { p_scope: scope, p_ops: [op] });
  assert.equal(r.error, null);
  assert.deepEqual(r.data, [{ status: "applied" }]);
  r = await sb.rpc("rcs_push", { p_scope: scope, p_ops: [op] });
  assert.deepEqual(r.data, [{ status: "applied" }], "replay by op id");
  r = await sb.rpc("rcs_pull", { p_scope: scope, p_cursor: 0, p_limit: 10 });
  assert.equal(r.error, null);
  assert.equal(r.data.rows.length, 1);
  assert.equal(r.data.rows[0].data.title, "from js");
  const req = sent.filter((s) => s.url.endsWith("/rest/v1/rpc/rcs_pull")).pop();
  assert.equal(req.method, "POST");
  assert.equal(req.headers.get("apikey"), anon);
  assert.equal(req.headers.get("authorization"), `Bearer ${session.access_token}`);
  assert.deepEqual(JSON.parse(req.body), { p_scope: scope, p_cursor: 0, p_limit: 10 });
});

await check("table mode: insert, filters with hostile values, keyset, order, limit", async () => {
  const owner = `${tag},owner.neq.x`;
  const rows = ["x)", "a,b", "c\"d"].map((id, i) => ({
    owner, id, version: `2026-01-01T00:00:0${i}Z`, deleted: false, data: { id, title: id },
  }));
  let r = await sb.from("notes").insert(rows).select();
  assert.equal(r.error, null, JSON.stringify(r.error));
  assert.equal(r.data.length, 3);
  const first = [...r.data].sort((a, b) => (a.updated_at + a.id < b.updated_at + b.id ? -1 : 1))[0];
  // A plain row in another scope that a badly escaped filter would leak.
  await sb.from("notes").insert({ owner: tag, id: "victim", version: "2026-01-01T00:00:00Z", deleted: false, data: null });
  const stamp = first.updated_at;
  r = await sb
    .from("notes")
    .select("id,version,deleted,data,updated_at")
    .eq("owner", owner)
    .or(`updated_at.gt.${quote(stamp)},and(updated_at.eq.${quote(stamp)},id.gt.${quote(first.id)})`)
    .order("updated_at", { ascending: true })
    .order("id", { ascending: true })
    .limit(10);
  assert.equal(r.error, null, JSON.stringify(r.error));
  assert.deepEqual(r.data.map((x) => x.id).sort(), rows.map((x) => x.id).filter((id) => id !== first.id).sort());
  const q = new URL(sent.filter((s) => s.url.includes("/rest/v1/notes?")).pop().url).searchParams;
  // What the adapter sends for the same page (remote::supabase::table::pull).
  assert.equal(q.get("owner"), `eq.${owner}`);
  assert.equal(q.get("or"), `(updated_at.gt.${quote(stamp)},and(updated_at.eq.${quote(stamp)},id.gt.${quote(first.id)}))`);
  assert.equal(q.get("order"), "updated_at.asc,id.asc");
  assert.equal(q.get("select"), "id,version,deleted,data,updated_at");
  r = await sb.from("notes").select("id").eq("owner", owner).in("id", ["x)", "a,b"]);
  assert.equal(r.error, null, JSON.stringify(r.error));
  assert.deepEqual(r.data.map((x) => x.id).sort(), ["a,b", "x)"]);
  r = await sb.from("notes").select("id").eq("owner", `${tag})`);
  assert.deepEqual(r.data, [], "a value with ) selects nothing else");
});

await check("compare-and-set PATCH and single()", async () => {
  const owner = `${tag}-cas`;
  await sb.from("notes").insert({ owner, id: "k", version: "v1", deleted: false, data: null });
  let r = await sb.from("notes").update({ version: "v2" }).eq("owner", owner).eq("id", "k").eq("version", "v1").select();
  assert.equal(r.data.length, 1);
  r = await sb.from("notes").update({ version: "v3" }).eq("owner", owner).eq("id", "k").eq("version", "v1").select();
  assert.equal(r.data.length, 0, "a stale version updates nothing");
  r = await sb.from("notes").select("version").eq("owner", owner).eq("id", "k").single();
  assert.equal(r.data.version, "v2");
});

await check("errors: RLS, duplicates, missing function, bad JWT", async () => {
  const other = client();
  const { data } = await other.auth.signUp({ email: `b${email}`, password: "password-123" });
  assert.ok(data.session);
  let r = await other.rpc("rcs_pull", { p_scope: scope, p_cursor: 0, p_limit: 10 });
  assert.deepEqual(r.data.rows, [], "user B sees none of A's rows");
  r = await other.rpc("rcs_push", { p_scope: scope, p_ops: [{ op_id: "b1", id: "r1", base_version: null, version: "2027-01-01T00:00:00Z", deleted: false, data: null }] });
  // The guide's rcs_push answers another user's record as a verdict on that op ("forbidden"),
  // not an error of the whole call (docs/backends/supabase.md, section 3).
  assert.equal(r.error, null);
  assert.equal(r.status, 200);
  assert.equal(r.data[0].status, "forbidden");
  r = await sb.from("notes").insert({ owner: tag, id: "victim", version: "x", deleted: false, data: null });
  assert.equal(r.error.code, "23505");
  assert.equal(r.status, 409);
  r = await sb.rpc("no_such_function", {});
  assert.equal(r.error.code, "PGRST202");
  assert.equal(r.status, 404);
  const anonClient = client();
  r = await anonClient.rpc("rcs_pull", { p_scope: scope, p_cursor: 0, p_limit: 10 });
  assert.ok(r.error, "anon is refused");
  const forged = createClient(url, anon, {
    auth: { persistSession: false },
    realtime: { transport: NoWebSocket },
    global: { headers: { Authorization: `Bearer ${session.access_token.slice(0, -3)}abc` } },
  });
  r = await forged.rpc("rcs_pull", { p_scope: scope, p_cursor: 0, p_limit: 10 });
  assert.equal(r.status, 401);
  assert.equal(r.error.code, "PGRST301");
});

await check("auth.refreshSession rotates the refresh token", async () => {
  const old = session.refresh_token;
  const { data, error } = await sb.auth.refreshSession({ refresh_token: old });
  assert.equal(error, null);
  assert.notEqual(data.session.refresh_token, old);
  const req = sent.filter((s) => s.url.includes("/auth/v1/token")).pop();
  assert.equal(new URL(req.url).searchParams.get("grant_type"), "refresh_token");
  assert.deepEqual(JSON.parse(req.body), { refresh_token: old });
  const again = await client().auth.refreshSession({ refresh_token: old });
  assert.ok(again.error, "a used refresh token is refused");
  const user = await sb.auth.getUser(data.session.access_token);
  assert.equal(user.data.user.email, email);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
