//! The SQL of one store, built once from the validated table prefix.

use crate::error::{Error, Result};

/// The SQL of one store, built once from the validated prefix.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) records: String,
    pub(super) applied: String,
    pub(super) meta: String,
    pub(super) seq: String,
    pub(super) migrate: Vec<String>,
    pub(super) lock_scope: String,
    pub(super) tx_settings: String,
    pub(super) lock_key_prefix: String,
    pub(super) applied_check: String,
    pub(super) current_for_update: String,
    pub(super) upsert_rows: String,
    pub(super) insert_applied: String,
    pub(super) pull: String,
    /// Changes of a scope after a sequence number (a progress hint).
    pub(super) count: String,
    pub(super) get: String,
    pub(super) prune: String,
    /// The `LISTEN`/`NOTIFY` channel of the store's changes (an identifier).
    pub(super) channel: String,
    /// Announces a scope's change to the listeners, at commit (bound channel and payload).
    pub(super) notify: String,
}

impl Sql {
    pub(super) fn new(prefix: &str) -> Result<Self> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .bytes()
                .enumerate()
                .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()));
        if !valid {
            return Err(Error::InvalidInput(format!(
                "postgres table prefix {prefix:?} must match [a-z_][a-z0-9_]* and be at most 40 bytes"
            )));
        }
        let records = format!("{prefix}records");
        let applied = format!("{prefix}applied_ops");
        let meta = format!("{prefix}meta");
        let seq = format!("{prefix}seq");
        let migrate = vec![
            format!("CREATE SEQUENCE IF NOT EXISTS {seq} AS bigint CACHE 1"),
            format!(
                "CREATE TABLE IF NOT EXISTS {records} (
                    scope text NOT NULL,
                    id text NOT NULL,
                    seq bigint NOT NULL,
                    version text NOT NULL,
                    updated_at timestamptz NOT NULL,
                    deleted boolean NOT NULL,
                    data jsonb,
                    PRIMARY KEY (scope, id)
                )"
            ),
            format!("CREATE UNIQUE INDEX IF NOT EXISTS {records}_feed ON {records} (scope, seq)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {applied} (
                    scope text NOT NULL,
                    op_id text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (scope, op_id)
                )"
            ),
            format!("CREATE INDEX IF NOT EXISTS {applied}_applied_at ON {applied} (applied_at)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value text NOT NULL)"
            ),
        ];
        Ok(Sql {
            lock_scope: "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))".into(),
            tx_settings: "SELECT set_config('lock_timeout', $1, true), \
                          set_config('idle_in_transaction_session_timeout', $2, true)"
                .into(),
            lock_key_prefix: format!("{records}\n"),
            applied_check: format!("SELECT op_id FROM {applied} WHERE scope = $1 AND op_id = ANY($2::text[])"),
            current_for_update: format!(
                "SELECT id, version, deleted, data FROM {records}
                 WHERE scope = $1 AND id = ANY($2::text[]) FOR UPDATE"
            ),
            upsert_rows: format!(
                "INSERT INTO {records} (scope, id, seq, version, updated_at, deleted, data)
                 SELECT $1, u.id, nextval('{seq}'), u.version, u.updated_at, u.deleted, u.data
                 FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::boolean[], $6::jsonb[])
                      AS u(id, version, updated_at, deleted, data)
                 ON CONFLICT (scope, id) DO UPDATE SET
                    seq = EXCLUDED.seq, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                    deleted = EXCLUDED.deleted, data = EXCLUDED.data"
            ),
            insert_applied: format!(
                "INSERT INTO {applied} (scope, op_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING"
            ),
            pull: format!(
                "SELECT seq, id, version, data FROM {records}
                 WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            count: format!("SELECT count(*) FROM {records} WHERE scope = $1 AND seq > $2"),
            get: format!(
                "SELECT data FROM {records}
                 WHERE scope = $1 AND id = $2 AND NOT deleted AND data IS NOT NULL"
            ),
            prune: format!("DELETE FROM {applied} WHERE applied_at < $1"),
            channel: format!("{prefix}changes"),
            notify: "SELECT pg_notify($1, $2)".into(),
            records,
            applied,
            meta,
            seq,
            migrate,
        })
    }
}
