//! Connecting ([`PostgresRemoteStore::connect`]) and creating the schema
//! ([`PostgresRemoteStore::migrate`]).

use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use super::errors::ErrorMapper;
use super::listen;
use super::sql::Sql;
use super::tls::{libpq_tls_parameters, tls_connector};
use super::{PostgresOptions, PostgresRemoteStore, SCHEMA_VERSION, redact_connection_string};
use crate::error::{Error, Result, StorageErrorKind};
use crate::record::Record;

impl<T: Record> PostgresRemoteStore<T> {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or the key/value form), checks
    /// that a connection can be made and, unless disabled, creates the schema.
    ///
    /// Fails with [`Error::Unavailable`] when the server cannot be reached, [`Error::Unauthorized`]
    /// for bad credentials, [`Error::InvalidInput`] for a bad URL or options. No message contains
    /// the password.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let sql = Sql::new(&options.table_prefix)?;
        if options.max_connections == 0 {
            return Err(Error::InvalidInput(
                "postgres max_connections must be at least 1".into(),
            ));
        }
        let (url, url_root_cert) = libpq_tls_parameters(url);
        let url = url.as_str();
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::InvalidInput(format!(
                "invalid PostgreSQL connection string {}: {e}",
                redact_connection_string(url)
            ))
        })?;
        let errors = ErrorMapper {
            secret: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .filter(|p| !p.is_empty()),
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("remote-cache-sync");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let (manager, listen_config, listen_tls) = if config.get_ssl_mode() == SslMode::Require {
            let extra: Vec<&Path> = options
                .tls_root_certificates
                .as_deref()
                .into_iter()
                .chain(url_root_cert.as_deref())
                .collect();
            let tls = tls_connector(&extra)?;
            let listen = (config.clone(), Some(tls.clone()));
            (
                Manager::from_config(config, tls, manager_config),
                listen.0,
                listen.1,
            )
        } else {
            // `prefer` without verification would be theatre; see the module docs.
            config.ssl_mode(SslMode::Disable);
            let listen = config.clone();
            (
                Manager::from_config(config, NoTls, manager_config),
                listen,
                None,
            )
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| Error::InvalidInput(format!("postgres pool: {e}")))?;
        // Per-transaction settings of every write transaction (set with `set_config(.., true)`,
        // which also works through transaction-pooling proxies): bounded lock waits, and a
        // transaction that stalls while holding its scope's lock is ended by the server.
        let tx_settings = [
            options.lock_timeout.as_millis().max(1).to_string(),
            (options.lock_timeout.as_millis() * 2)
                .max(1_000)
                .to_string(),
        ];
        let mut listen_config = listen_config;
        // Named apart, so operators (and tests) can tell the listening sessions from the pool.
        listen_config.application_name(format!(
            "{}-listen:{}",
            listen_config
                .get_application_name()
                .unwrap_or("remote-cache-sync"),
            sql.channel
        ));
        let listen = Arc::new(listen::ListenSetup {
            config: listen_config,
            tls: listen_tls,
            channel: sql.channel.clone(),
            errors: errors.clone(),
            options: options.realtime,
        });
        let store = PostgresRemoteStore {
            pool,
            sql,
            errors,
            listen,
            tx_settings,
            prefix: options.table_prefix,
            _records: PhantomData,
        };
        if options.auto_migrate {
            store.migrate().await?;
        } else {
            // Fail now, not on the first sync, when the server or credentials are wrong.
            drop(store.client().await?);
        }
        tracing::debug!(prefix = %store.prefix, "connected to postgres remote");
        Ok(store)
    }

    /// Creates the tables, index and sequence if missing (idempotent, safe to run from several
    /// processes at once). Fails with [`Error::Storage`] ([`StorageErrorKind::SchemaTooNew`]) when
    /// the database was set up by a newer build.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let broken = client.broken.clone();
        let e = |e: tokio_postgres::Error| self.fail(&broken, &e);
        let tx = client.transaction().await.map_err(e)?;
        let [lock_timeout, idle_timeout] = &self.tx_settings;
        tx.execute(&self.sql.tx_settings, &[lock_timeout, idle_timeout])
            .await
            .map_err(e)?;
        // CREATE ... IF NOT EXISTS races between sessions; one migrator at a time per prefix.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
            &[&format!("remote-cache-sync migrate {}", self.prefix)],
        )
        .await
        .map_err(e)?;
        for stmt in &self.sql.migrate {
            tx.batch_execute(stmt).await.map_err(e)?;
        }
        let meta = &self.sql.meta;
        let row = tx
            .query_opt(
                &format!("SELECT value FROM {meta} WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .map_err(e)?;
        match row {
            None => {
                tx.execute(
                    &format!("INSERT INTO {meta} (key, value) VALUES ('schema_version', $1)"),
                    &[&SCHEMA_VERSION.to_string()],
                )
                .await
                .map_err(e)?;
            }
            Some(row) => {
                let v: String = row.try_get(0).map_err(|err| Error::Storage {
                    kind: StorageErrorKind::Corrupt,
                    message: format!("{meta}.schema_version: {err}"),
                })?;
                let v: i32 = v.parse().map_err(|_| Error::Storage {
                    kind: StorageErrorKind::Corrupt,
                    message: format!("{meta}.schema_version is {v:?}"),
                })?;
                if v > SCHEMA_VERSION {
                    return Err(Error::Storage {
                        kind: StorageErrorKind::SchemaTooNew,
                        message: format!(
                            "postgres tables {}* are at schema version {v}; this build knows {SCHEMA_VERSION}",
                            self.prefix
                        ),
                    });
                }
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(())
    }
}
