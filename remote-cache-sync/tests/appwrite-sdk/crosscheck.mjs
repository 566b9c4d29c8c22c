// The official Node SDK (node-appwrite) against the Appwrite stand-in, making the calls
// AppwriteRemoteStore makes, so a stand-in that drifts from what real clients send and expect
// fails here. Run by scripts/test.sh with the variables scripts/start-appwrite.sh prints:
//   node crosscheck.mjs
import assert from "node:assert/strict";
import { test } from "node:test";
import { AppwriteException, Client, Databases, ID, Query, Users } from "node-appwrite";

const endpoint = process.env.RCS_TEST_APPWRITE_ENDPOINT;
const project = process.env.RCS_TEST_APPWRITE_PROJECT;
const key = process.env.RCS_TEST_APPWRITE_KEY;
if (!endpoint || !project || !key) {
  throw new Error("RCS_TEST_APPWRITE_ENDPOINT/PROJECT/KEY are not set (scripts/start-appwrite.sh)");
}
const DB = "rcs";
const COLL = "records";
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/;

const server = new Client().setEndpoint(endpoint).setProject(project).setKey(key);
const db = new Databases(server);
const owner = `sdk-${Date.now()}-${Math.random().toString(16).slice(2)}`;
// Document ids of this run (the check can run again against the same stand-in).
const DOC1 = `sdk-doc-1-${Math.random().toString(16).slice(2, 10)}`;
const DOC2 = `sdk-doc-2-${Math.random().toString(16).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function doc(recordId, title, updatedAt) {
  return { record_id: recordId, owner, title, n: 1, updated_at: updatedAt, deleted_at: null };
}

async function rejects(promise, code, type) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof AppwriteException, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.type, type, e.message);
    return true;
  });
}

test("health/version answers with a Date header (the adapter's clock)", async () => {
  const res = await fetch(`${endpoint}/health/version`);
  assert.equal(res.status, 200);
  assert.ok(res.headers.get("date"), "Date header");
  assert.ok((await res.json()).version);
});

test("transactions: create, stage an upsert, commit; invisible until committed", async () => {
  const tx = await db.createTransaction({ ttl: 60 });
  assert.equal(tx.status, "pending");
  assert.equal(tx.operations, 0);
  const staged = await db.createOperations({
    transactionId: tx.$id,
    operations: [{ action: "upsert", databaseId: DB, collectionId: COLL, documentId: DOC1,
      data: doc("r1", "one", "2026-01-01T00:00:00.001Z") }],
  });
  assert.equal(staged.operations, 1);
  const before = await db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("$id", [DOC1]), Query.limit(1)], total: false });
  assert.equal(before.documents.length, 0, "staged writes are not visible");
  const done = await db.updateTransaction({ transactionId: tx.$id, commit: true });
  assert.equal(done.status, "committed");
  const d = await db.getDocument({ databaseId: DB, collectionId: COLL, documentId: DOC1 });
  assert.equal(d.record_id, "r1");
  assert.equal(d.owner, owner);
  assert.match(d.$updatedAt, STAMP);
  assert.match(d.$createdAt, STAMP);
  assert.equal(typeof d.$sequence, "string");
  assert.deepEqual(d.$permissions, []);
});

test("a commit fails with 409 transaction_conflict when a document changed after staging", async () => {
  const tx = await db.createTransaction({ ttl: 60 });
  await db.createOperations({ transactionId: tx.$id, operations: [{ action: "upsert",
    databaseId: DB, collectionId: COLL, documentId: DOC1,
    data: { title: "from the transaction" } }] });
  await sleep(5);
  await db.upsertDocument({ databaseId: DB, collectionId: COLL, documentId: DOC1,
    data: { title: "another writer" } });
  await rejects(db.updateTransaction({ transactionId: tx.$id, commit: true }), 409, "transaction_conflict");
  const d = await db.getDocument({ databaseId: DB, collectionId: COLL, documentId: DOC1 });
  assert.equal(d.title, "another writer");
});

test("rollback discards staged operations", async () => {
  const tx = await db.createTransaction({ ttl: 60 });
  await db.createOperations({ transactionId: tx.$id, operations: [{ action: "upsert",
    databaseId: DB, collectionId: COLL, documentId: DOC2,
    data: doc("r2", "two", "2026-01-01T00:00:00.002Z") }] });
  await db.updateTransaction({ transactionId: tx.$id, rollback: true });
  await rejects(db.getDocument({ databaseId: DB, collectionId: COLL, documentId: DOC2 }),
    404, "document_not_found");
});

test("the adapter's keyset pull: equal, or/and on $updatedAt/$id, orderAsc, limit, total=false", async () => {
  for (let i = 0; i < 5; i++) {
    await db.createDocument({ databaseId: DB, collectionId: COLL, documentId: ID.unique(),
      data: doc(`k${i}`, `k${i}`, `2026-01-01T00:00:0${i}.000Z`) });
  }
  const page = async (after) => {
    const queries = [Query.equal("owner", [owner])];
    if (after) {
      queries.push(Query.or([Query.greaterThan("$updatedAt", after.$updatedAt),
        Query.and([Query.equal("$updatedAt", [after.$updatedAt]), Query.greaterThan("$id", after.$id)])]));
    }
    queries.push(Query.orderAsc("$updatedAt"), Query.orderAsc("$id"), Query.limit(2));
    return db.listDocuments({ databaseId: DB, collectionId: COLL, queries, total: false });
  };
  const seen = [];
  let last = null;
  for (;;) {
    const p = await page(last);
    assert.equal(p.total, 0, "total=false skips the count");
    seen.push(...p.documents.map((d) => d.record_id));
    if (p.documents.length < 2) break;
    last = p.documents.at(-1);
  }
  assert.deepEqual(seen.filter((r) => r.startsWith("k")).sort(), ["k0", "k1", "k2", "k3", "k4"]);
  assert.equal(new Set(seen).size, seen.length, "no document twice");
  const counted = await db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("owner", [owner])] });
  assert.equal(counted.total, counted.documents.length);
});

test("errors: {message, code, type} for bad queries, unknown attributes, duplicates, bad ids", async () => {
  await rejects(db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("nope", ["x"])] }), 400, "general_query_invalid");
  await rejects(db.createDocument({ databaseId: DB, collectionId: COLL, documentId: DOC1,
    data: doc("r1", "dup", "2026-01-01T00:00:00.001Z") }), 409, "document_already_exists");
  await rejects(db.createDocument({ databaseId: DB, collectionId: COLL, documentId: ID.unique(),
    data: { ...doc("r3", "x", "2026-01-01T00:00:00.001Z"), colour: "red" } }), 400, "document_invalid_structure");
  await rejects(db.createDocument({ databaseId: DB, collectionId: COLL, documentId: "_bad id",
    data: doc("r4", "x", "2026-01-01T00:00:00.001Z") }), 400, "general_argument_invalid");
  await rejects(db.listDocuments({ databaseId: DB, collectionId: "nosuchcollection" }), 404, "collection_not_found");
});

test("user JWTs: own documents only; unknown JWTs are 401 user_jwt_invalid", async () => {
  const users = new Users(server);
  const mk = async () => {
    const u = await users.create({ userId: ID.unique() });
    const { jwt } = await users.createJWT({ userId: u.$id, duration: 900 });
    return { id: u.$id, db: new Databases(new Client().setEndpoint(endpoint).setProject(project).setJWT(jwt)) };
  };
  const a = await mk();
  const b = await mk();
  const tx = await a.db.createTransaction({ ttl: 60 });
  await a.db.createOperations({ transactionId: tx.$id, operations: [{ action: "upsert", databaseId: DB,
    collectionId: COLL, documentId: `a-${a.id}`, data: { ...doc("ra", "a's", "2026-01-01T00:00:00.001Z"), owner: a.id } }] });
  await a.db.updateTransaction({ transactionId: tx.$id, commit: true });
  const mine = await a.db.getDocument({ databaseId: DB, collectionId: COLL, documentId: `a-${a.id}` });
  assert.deepEqual([...mine.$permissions].sort(),
    [`delete("user:${a.id}")`, `read("user:${a.id}")`, `update("user:${a.id}")`]);
  const theirs = await b.db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("owner", [a.id])], total: false });
  assert.equal(theirs.documents.length, 0, "b must not see a's documents");
  await rejects(b.db.getDocument({ databaseId: DB, collectionId: COLL, documentId: `a-${a.id}` }),
    404, "document_not_found");
  const tx2 = await b.db.createTransaction({ ttl: 60 });
  await rejects(b.db.createOperations({ transactionId: tx2.$id, operations: [{ action: "upsert",
    databaseId: DB, collectionId: COLL, documentId: `a-${a.id}`, data: { title: "b's" } }] }),
    401, "user_unauthorized");
  const forged = new Databases(new Client().setEndpoint(endpoint).setProject(project)
    .setJWT("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.forged"));
  await rejects(forged.listDocuments({ databaseId: DB, collectionId: COLL }), 401, "user_jwt_invalid");
});

test("queries (RemoteStore::query): equal with several values, contains, startsWith, isNull, or, $id keyset", async () => {
  const NOTES = "notes";
  const mine = `${owner}-q`;
  const texts = ["apple", "Apple pie", "pear", "50% off", "a_b", '"quoted"'];
  for (const [i, t] of texts.entries()) {
    await db.createDocument({ databaseId: DB, collectionId: NOTES, documentId: ID.unique(),
      data: { record_id: `q${i}`, owner: mine, title: JSON.stringify(t), tags: JSON.stringify([t]),
        updated_at: "2026-01-01T00:00:00.000Z", deleted_at: i === 2 ? "2026-01-02T00:00:00.000Z" : null } });
  }
  await db.createDocument({ databaseId: DB, collectionId: NOTES, documentId: ID.unique(),
    data: { record_id: "arr", owner: mine, title: JSON.stringify(["x"]), updated_at: "2026-01-01T00:00:00.000Z" } });
  const list = async (...queries) => {
    const out = [];
    let after = null;
    for (;;) {
      const qs = [Query.equal("owner", [mine]),
        Query.or([Query.isNull("deleted_at"), Query.equal("deleted_at", [""])]), ...queries];
      if (after) qs.push(Query.greaterThan("$id", after));
      qs.push(Query.orderAsc("$id"), Query.limit(2));
      const p = await db.listDocuments({ databaseId: DB, collectionId: NOTES, queries: qs, total: false });
      out.push(...p.documents.map((d) => d.record_id));
      if (p.documents.length < 2) return out.sort();
      after = p.documents.at(-1).$id;
    }
  };
  // equal with several values is any of them; the tombstone (q2) is filtered out.
  assert.deepEqual(await list(Query.equal("title", [JSON.stringify("apple"), JSON.stringify("pear")])), ["q0"]);
  // contains is a substring match with the wildcards escaped (% and _ stand for themselves);
  // LIKE may fold case, so "App" finds "apple" too: clients treat answers as candidates.
  assert.deepEqual(await list(Query.contains("title", ["0%"])), ["q3"]);
  assert.deepEqual(await list(Query.contains("title", ["a_b"])), ["q4"]);
  assert.ok((await list(Query.contains("title", ["App"]))).includes("q1"));
  assert.deepEqual(await list(Query.contains("title", ['quoted\\"'])), [],
    "a backslash in a contains value escapes the next character (MariaDB LIKE)");
  assert.deepEqual(await list(Query.contains("title", ["quoted"])), ["q5"]);
  // Strings compare with the column's collation (MariaDB's utf8mb4 default folds case).
  const folded = await db.listDocuments({ databaseId: DB, collectionId: NOTES,
    queries: [Query.equal("owner", [mine.toUpperCase()])], total: false });
  assert.equal(folded.documents.length, texts.length + 1);
  // startsWith("[") finds the documents whose JSON text is an array.
  assert.deepEqual(await list(Query.or([Query.equal("title", [JSON.stringify("zzz")]),
    Query.startsWith("title", "[")])), ["arr"]);
});

test("array attributes: contains is an element match, equal is refused", async () => {
  await db.createDocument({ databaseId: DB, collectionId: COLL, documentId: ID.unique(),
    data: { ...doc("arr1", "t", "2026-01-01T00:00:00.001Z"), tags: ["x", "y"] } });
  const p = await db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("owner", [owner]), Query.contains("tags", ["x"])], total: false });
  assert.deepEqual(p.documents.map((d) => d.record_id), ["arr1"]);
  const none = await db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("owner", [owner]), Query.contains("tags", ["xy"])], total: false });
  assert.equal(none.documents.length, 0, "no substring match on array elements");
  await rejects(db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.equal("tags", ["x"])] }), 400, "general_query_invalid");
  await rejects(db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.contains("n", ["1"])] }), 400, "general_query_invalid");
});

test("select (digests): only the selected attributes, internal $ attributes always", async () => {
  const p = await db.listDocuments({ databaseId: DB, collectionId: COLL, queries: [
    Query.equal("owner", [owner]), Query.select(["record_id", "updated_at", "deleted_at", "owner"]),
    Query.orderAsc("$id"), Query.limit(5)], total: false });
  assert.ok(p.documents.length > 0);
  for (const d of p.documents) {
    assert.deepEqual(Object.keys(d).filter((k) => !k.startsWith("$")).sort(),
      ["deleted_at", "owner", "record_id", "updated_at"]);
    for (const k of ["$id", "$sequence", "$createdAt", "$updatedAt", "$permissions"]) {
      assert.ok(k in d, `${k} is always answered`);
    }
    assert.equal(d.title, undefined);
  }
  await rejects(db.listDocuments({ databaseId: DB, collectionId: COLL,
    queries: [Query.select(["nope"])] }), 400, "general_query_invalid");
});
