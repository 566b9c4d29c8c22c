// The requests the official client, @supabase/supabase-js, builds for a list of calls, without
// a server: its `fetch` is replaced by one that records each request and answers a canned
// success. Run by remote-cache-sync/tests/supabase_js_requests.rs, which makes the same calls
// through our Supabase adapter and compares the two lists of requests.
//
// Input (stdin): {"url", "anon", "token", "calls": [call, …]}, a call being one of
//   {"kind": "select", "table", "columns", "eq": [[col, value], …], "is": [[col, value], …]?,
//    "in": [col, [values]] | null, "or": "…" | ["…", …] | null, "order": [col, …],
//    "limit": n | null}
//   {"kind": "insert", "table", "body"}            (insert(body).select())
//   {"kind": "update", "table", "body", "eq": […]} (update(body).eq(…)….select())
//   {"kind": "rpc", "fn", "args"}
//   {"kind": "refresh", "refresh_token"}            (auth.refreshSession)
// Output (stdout): one JSON array of {"method", "url", "headers": {name: value}, "body"}.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { createClient } = require("@supabase/supabase-js");

const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const sent = [];
const fakeFetch = async (url, init = {}) => {
  const headers = {};
  new Headers(init.headers || {}).forEach((v, k) => (headers[k] = v));
  sent.push({ method: init.method || "GET", url: String(url), headers, body: init.body ?? null });
  const session = {
    access_token: input.token, refresh_token: "next", token_type: "bearer",
    expires_in: 3600, expires_at: Math.floor(Date.now() / 1000) + 3600,
    user: { id: "00000000-0000-0000-0000-000000000000", aud: "authenticated", role: "authenticated" },
  };
  const body = String(url).includes("/auth/v1/") ? JSON.stringify(session) : "[]";
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
};
class NoWebSocket {}
const options = (headers) => ({
  auth: { persistSession: false, autoRefreshToken: false },
  global: { fetch: fakeFetch, headers },
  realtime: { transport: NoWebSocket },
});
const user = createClient(input.url, input.anon, options({ Authorization: `Bearer ${input.token}` }));
const auth = createClient(input.url, input.anon, options({}));

for (const c of input.calls) {
  let r;
  switch (c.kind) {
    case "select": {
      let q = user.from(c.table).select(c.columns);
      for (const [k, v] of c.eq) q = q.eq(k, v);
      for (const [k, v] of c.is || []) q = q.is(k, v);
      if (c.in) q = q.in(c.in[0], c.in[1]);
      for (const f of [c.or || []].flat()) q = q.or(f);
      for (const col of c.order) q = q.order(col, { ascending: true });
      if (c.limit != null) q = q.limit(c.limit);
      r = await q;
      break;
    }
    case "insert":
      r = await user.from(c.table).insert(c.body).select();
      break;
    case "update": {
      let q = user.from(c.table).update(c.body);
      for (const [k, v] of c.eq) q = q.eq(k, v);
      r = await q.select();
      break;
    }
    case "rpc":
      r = await user.rpc(c.fn, c.args);
      break;
    case "refresh":
      r = await auth.auth.refreshSession({ refresh_token: c.refresh_token });
      break;
    default:
      throw new Error(`unknown call ${c.kind}`);
  }
  if (r.error) throw new Error(`${c.kind}: ${JSON.stringify(r.error)}`);
}
process.stdout.write(JSON.stringify(sent));
