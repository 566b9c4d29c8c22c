//! The database side: a fresh database per start, Supabase's platform shapes in it (what the
//! Supabase images create before any project SQL runs), then the guide's SQL blocks, verbatim.

use anyhow::{Context, Result};
use tokio_postgres::NoTls;

/// What a Supabase project has before the user's SQL (from Supabase's `postgres` image and
/// GoTrue's migrations, reduced to what PostgREST requests and RLS policies touch):
/// - the roles `anon`, `authenticated` (NOLOGIN) and `service_role` (NOLOGIN, BYPASSRLS), granted
///   to the `authenticator` role PostgREST logs in as;
/// - `auth.uid()`, `auth.role()`, `auth.jwt()`, reading the `request.jwt.claims` setting that
///   PostgREST sets per request (Supabase docs, "Row Level Security": "auth.uid() returns the ID
///   of the user making the request");
/// - `auth.users` and `auth.refresh_tokens`, GoTrue's (reduced) tables;
/// - Supabase's default privileges: everything created in `public` is granted to `anon`,
///   `authenticated` and `service_role` (so a guide must revoke what `anon` must not have);
/// - the statement timeouts Supabase sets on the API roles (anon 3 s, authenticated 8 s), which
///   PostgREST applies per request ("Impersonated Role Settings").
pub const PLATFORM_SQL: &str = r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN CREATE ROLE authenticator NOINHERIT LOGIN; END IF;
END $$;
GRANT anon, authenticated, service_role TO authenticator;
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                         current_setting('request.jwt.claims', true)::jsonb ->> 'sub'), '')::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.role', true),
                         current_setting('request.jwt.claims', true)::jsonb ->> 'role'), '')::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.jwt() TO anon, authenticated, service_role;
CREATE TABLE auth.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text UNIQUE NOT NULL,
  encrypted_password text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE auth.refresh_tokens (
  token text PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth.users(id),
  session_id uuid NOT NULL,
  revoked boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
"#;

/// The ```sql blocks of a Markdown guide, in order.
pub fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```sql") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Creates a new database next to the one `pg_url` names, applies the platform SQL and the
/// guide's blocks; returns the new database's URL.
pub async fn create_database(pg_url: &str, guide: &str) -> Result<String> {
    let name = format!(
        "rcs_supa_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let (client, conn) = tokio_postgres::connect(pg_url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .context("CREATE DATABASE")?;
    drop(client);
    let _ = task.await;
    let mut config: tokio_postgres::Config =
        pg_url.parse().context("parsing the PostgreSQL URL")?;
    config.dbname(&name);
    let (client, conn) = config
        .connect(NoTls)
        .await
        .context("connecting to the new database")?;
    tokio::spawn(conn);
    client
        .batch_execute(PLATFORM_SQL)
        .await
        .context("applying the platform SQL")?;
    for (i, block) in sql_blocks(guide).iter().enumerate() {
        client
            .batch_execute(block)
            .await
            .with_context(|| format!("applying SQL block {} of the guide:\n{block}", i + 1))?;
    }
    let url = pg_url.rsplit_once('/').map(|(base, rest)| {
        let query = rest
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        format!("{base}/{name}{query}")
    });
    url.context("the PostgreSQL URL has no database part")
}

#[cfg(test)]
mod tests {
    #[test]
    fn blocks() {
        let md =
            "x\n```sql\nSELECT 1;\n```\n```rust\nno\n```\n  ```sql\nSELECT 2;\nSELECT 3;\n  ```\n";
        assert_eq!(
            super::sql_blocks(md),
            vec!["SELECT 1;\n", "SELECT 2;\nSELECT 3;\n"]
        );
    }
}
