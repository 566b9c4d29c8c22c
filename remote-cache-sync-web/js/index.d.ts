// Types of remote-cache-sync's browser API (remote-cache.js).

/** A record: a JSON object with a string `id`; `updated_at` (RFC 3339) is its version. */
export interface JsonRecord {
  id: string;
  updated_at?: string;
  [field: string]: unknown;
}

/** Every rejection. `code` is stable: see the README of this package. */
export interface RemoteCacheError {
  code:
    | "not_found" | "conflict" | "unauthorized" | "rate_limited" | "unavailable" | "rejected"
    | "refused" | "malformed_response" | "invalid_scope" | "invalid_query" | "invalid_input"
    | "stale_version" | "codec" | "storage_locked" | "storage_unavailable" | "storage_full"
    | "wrong_key" | "key_required" | "storage" | "cancelled" | "closed" | "worker" | "other";
  message: string;
  /** Whether trying again later may succeed (e.g. the remote is unreachable). */
  retryable: boolean;
}

export interface OpenOptions {
  /** An OPFS file name (letters, digits, '.', '-', '_'), or ":memory:" for a cache in memory. */
  database: string;
  /** The remote's base URL (`rcs serve`), e.g. "http://127.0.0.1:8080". */
  remote: string;
  /** The scope to sync: a name, or `{ name, keys }`. */
  scope: string | { name: string; keys?: Record<string, string> };
  /** Bearer token for the remote. */
  token?: string;
  /**
   * Encrypts the OPFS database with this passphrase (SQLite3 Multiple Ciphers, SQLCipher 4
   * scheme: AES-256 pages with an HMAC-SHA512 each, key by PBKDF2-HMAC-SHA512 with 256,000
   * iterations). A new database is created encrypted; an existing one must have been created
   * with this key. Rejects with `wrong_key` for another key (or a database that is not
   * encrypted), with `key_required` when an encrypted database is opened without one, and
   * with `invalid_input` for an empty key or with ":memory:". Nothing is read or changed then.
   */
  key?: string;
  /** Background sync period in ms (default 30000; 0: none). It follows online/offline events. */
  syncIntervalMs?: number;
  /** Where worker.js is (default: beside remote-cache.js). */
  workerUrl?: string | URL;
}

export interface Filter {
  field: string;
  op: "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "in" | "contains" | "is_null" | "has";
  value?: unknown;
}

export interface Query {
  filters?: Filter[];
  order_by?: { field: string; direction?: "asc" | "desc"; nocase?: boolean }[];
  limit?: number;
  offset?: number;
}

export interface SyncReport {
  pushed: number;
  pulled: number;
  conflicts: number;
  parked: number;
  rejected: number;
  quarantined: number;
}

export interface Status {
  /** Writes waiting for the remote. */
  pending: number;
  /** Writes the remote refused, kept for the app to fix or discard. */
  parked: number;
  /** Remote rows that did not decode. */
  quarantined: number;
  /** Why sync is paused (credentials, a refused scope), or null. */
  paused: string | null;
  online: boolean;
  /** Where the cache lives. */
  storage: "opfs" | "memory";
}

export declare class RemoteCache {
  /** Starts the worker and opens the cache. Rejects with a RemoteCacheError. */
  static open(options: OpenOptions): Promise<RemoteCache>;
  /** Writes a record (offline too) and queues it; resolves with the record as stored. */
  put<T extends JsonRecord>(record: T): Promise<T>;
  get<T extends JsonRecord>(id: string): Promise<T | null>;
  list<T extends JsonRecord>(query?: Query): Promise<T[]>;
  delete(id: string): Promise<void>;
  /** Push the queue, pull the remote's changes. */
  sync(): Promise<SyncReport>;
  status(): Promise<Status>;
  setOnline(online: boolean): Promise<void>;
  /**
   * Changes the key of an encrypted cache: every page is re-encrypted in one transaction (an
   * interruption leaves the old key valid); the next `open` needs `newKey`. Rejects with
   * `invalid_input` for a cache opened without a key or an empty `newKey`.
   */
  rekey(newKey: string): Promise<void>;
  close(): Promise<void>;
}
