// The official web SDK's realtime (`appwrite` on npm, 21.5.0: the last release for Appwrite
// 1.8.x that subscribes by URL channels, as 1.8's server expects) against the Appwrite
// stand-in's `/v1/realtime`, with node-appwrite writing as a server would. Node 20 has no
// global WebSocket and no `window`: the SDK calls `window?.setTimeout` and `new WebSocket(url)`,
// so `window` is the global object here and `WebSocket` comes from the `ws` package (pinned in
// package.json). Run by scripts/appwrite-sdk-check.sh (scripts/test.sh).
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { Client as WebClient } from "appwrite";
import { Client, Databases, ID, Permission, Role, Users } from "node-appwrite";

globalThis.window ??= globalThis;
globalThis.WebSocket ??= WebSocket;
globalThis.localStorage ??= { getItem: () => null, setItem: () => {}, removeItem: () => {} };

const endpoint = process.env.RCS_TEST_APPWRITE_ENDPOINT;
const project = process.env.RCS_TEST_APPWRITE_PROJECT;
const key = process.env.RCS_TEST_APPWRITE_KEY;
if (!endpoint || !project || !key) {
  throw new Error("RCS_TEST_APPWRITE_ENDPOINT/PROJECT/KEY are not set (scripts/start-appwrite.sh)");
}
const DB = "rcs";
const COLL = "records";
const CHANNEL = `databases.${DB}.collections.${COLL}.documents`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = new Client().setEndpoint(endpoint).setProject(project).setKey(key);
const db = new Databases(server);
const owner = `rt-${Date.now()}-${Math.random().toString(16).slice(2)}`;
const data = (recordId, title) => ({
  record_id: recordId, owner, title, n: 1, updated_at: "2026-01-01T00:00:00.001Z", deleted_at: null,
});

/** Subscribes with the web SDK; resolves once the server said `connected`. */
async function subscribe(channel) {
  const client = new WebClient().setEndpoint(endpoint).setProject(project);
  const events = [];
  const waiters = [];
  const close = client.subscribe(channel, (e) => {
    events.push(e);
    waiters.splice(0).forEach((w) => w());
  });
  for (let i = 0; client.realtime.lastMessage?.type !== "connected"; i++) {
    assert.ok(i < 200, "the SDK never got `connected`");
    await sleep(25);
  }
  const next = async (ms = 3000) => {
    if (events.length === 0) {
      await Promise.race([new Promise((r) => waiters.push(r)), sleep(ms)]);
    }
    return events.shift();
  };
  return { client, next, close };
}

test("the web SDK gets create, update and delete events, transactions' too, for readable documents only", async () => {
  const sub = await subscribe(CHANNEL);
  try {
    assert.deepEqual(sub.client.realtime.lastMessage.data.channels, [CHANNEL]);
    const id = ID.unique();
    await db.createDocument({ databaseId: DB, collectionId: COLL, documentId: id,
      data: data("pub", "public"), permissions: [Permission.read(Role.any())] });
    let e = await sub.next();
    assert.ok(e, "no event for a public create");
    assert.equal(e.payload.$id, id);
    assert.ok(e.channels.includes(CHANNEL), e.channels.join());
    assert.ok(e.channels.includes(`${CHANNEL}.${id}`), e.channels.join());
    assert.ok(e.events.includes(`${CHANNEL}.${id}.create`), e.events.join());
    assert.ok(e.events.includes(`databases.*.collections.*.documents.*.create`), e.events.join());
    assert.ok(e.timestamp, "timestamp");

    // A document only a user may read: a guest's socket must not hear of it. The next public
    // event arrives first, proving the private one was filtered (one socket, in order).
    const users = new Users(server);
    const u = await users.create({ userId: ID.unique() });
    await db.createDocument({ databaseId: DB, collectionId: COLL, documentId: ID.unique(),
      data: data("priv", "private"), permissions: [Permission.read(Role.user(u.$id))] });
    await db.upsertDocument({ databaseId: DB, collectionId: COLL, documentId: id,
      data: { title: "public 2" } });
    e = await sub.next();
    assert.ok(e, "no event for a public upsert");
    assert.ok(e.events.includes(`${CHANNEL}.${id}.upsert`), e.events.join());
    assert.equal(e.payload.$id, id, "the private document reached a guest");
    assert.equal(e.payload.title, "public 2");

    // A committed transaction's upsert is an `update` event, after the commit.
    const tx = await db.createTransaction({ ttl: 60 });
    await db.createOperations({ transactionId: tx.$id, operations: [{ action: "upsert",
      databaseId: DB, collectionId: COLL, documentId: id, data: { title: "in tx" } }] });
    assert.equal(await sub.next(300), undefined, "an event before the commit");
    await db.updateTransaction({ transactionId: tx.$id, commit: true });
    e = await sub.next();
    assert.ok(e, "no event for a committed transaction");
    assert.ok(e.events.includes(`${CHANNEL}.${id}.update`), e.events.join());
    assert.equal(e.payload.title, "in tx");

    await db.deleteDocument({ databaseId: DB, collectionId: COLL, documentId: id });
    e = await sub.next();
    assert.ok(e, "no event for a delete");
    assert.ok(e.events.includes(`${CHANNEL}.${id}.delete`), e.events.join());
  } finally {
    sub.close();
  }
});

test("the protocol: connected, ping/pong, errors for bad messages, an unknown project and no channels", async () => {
  const ws = (query) => new Promise((resolve, reject) => {
    const s = new WebSocket(`${endpoint.replace(/^http/, "ws")}/realtime?${query}`);
    const got = [];
    let wake = () => {};
    s.on("message", (m) => { got.push(JSON.parse(m.toString())); wake(); });
    s.on("error", reject);
    s.on("open", () => resolve({
      s,
      next: async () => {
        for (let i = 0; got.length === 0 && i < 100; i++) {
          await new Promise((r) => { wake = r; setTimeout(r, 30); });
        }
        return got.shift();
      },
    }));
  });
  const ok = await ws(`project=${project}&channels[]=${CHANNEL}`);
  assert.equal((await ok.next()).type, "connected");
  ok.s.send(JSON.stringify({ type: "ping" }));
  assert.deepEqual(await ok.next(), { type: "pong" });
  ok.s.send("not json");
  const bad = await ok.next();
  assert.equal(bad.type, "error");
  assert.equal(bad.data.code, 1003);
  ok.s.close();

  for (const query of [`project=nope&channels[]=${CHANNEL}`, `project=${project}`]) {
    const c = await ws(query);
    const m = await c.next();
    assert.equal(m.type, "error", query);
    assert.equal(m.data.code, 1008, query);
    c.s.close();
  }
});
