//! The shared store: PostgreSQL (or a database that speaks its protocol
//! and SQL, such as CockroachDB or YugabyteDB), so that several Ward
//! replicas run on one database.
//!
//! Every record is a row of `ward_records` keyed by kind and key; keys are
//! `BYTEA`, so that ranges sort by bytes as sled's do, whatever the
//! database's collation. Management commits are serialized by the one row
//! of `ward_cluster`, whose revision each commit bumps in its own
//! transaction: revisions are therefore gap-free and in commit order, and
//! a replica that has read revision N has seen every change up to N in
//! `ward_changes`. Nothing here needs LISTEN/NOTIFY, advisory locks or
//! any type beyond `TEXT`, `BYTEA` and `BIGINT` for correctness; the
//! migration lock uses an advisory lock where the database has one.
//!
//! The trait is synchronous, like the sled store it stands beside; this
//! store runs its connections on a small runtime of its own and waits for
//! each call, so it can be called from any thread.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{Change, Kind, Result, Store, StoreError, Write, WriteLock, successor};

/// Connections one replica keeps at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a free connection, or for a new one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a replica waits for the cluster's write lock before the
/// management call fails (another replica holds it that long only when
/// something is wrong).
const LOCK_TIMEOUT: &str = "30s";
/// Commits kept in the change log; a replica further behind loads
/// everything again.
const CHANGES_KEPT: i64 = 100_000;
/// Key of the migration advisory lock (an arbitrary constant: "ward").
const MIGRATION_LOCK: i64 = 0x7761_7264;

/// The schema, one entry per version; each applies in one transaction.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE IF NOT EXISTS ward_records (
         kind TEXT NOT NULL,
         key BYTEA NOT NULL,
         value BYTEA NOT NULL,
         PRIMARY KEY (kind, key)
     );
     CREATE TABLE IF NOT EXISTS ward_cluster (
         id INT NOT NULL PRIMARY KEY,
         revision BIGINT NOT NULL
     );
     INSERT INTO ward_cluster (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
     CREATE TABLE IF NOT EXISTS ward_changes (
         revision BIGINT NOT NULL PRIMARY KEY,
         scopes TEXT NOT NULL,
         at_ms BIGINT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS ward_locks (name TEXT NOT NULL PRIMARY KEY);
     INSERT INTO ward_locks (name) VALUES ('writes') ON CONFLICT (name) DO NOTHING;
     CREATE TABLE IF NOT EXISTS ward_leases (
         name TEXT NOT NULL PRIMARY KEY,
         holder TEXT NOT NULL,
         until_ms BIGINT NOT NULL
     );",
)];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 1;

/// A PostgreSQL-backed store.
pub struct PostgresStore {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn database(err: tokio_postgres::Error) -> StoreError {
    // The database's own message (with its detail) says far more than
    // the driver's summary.
    match err.as_db_error() {
        Some(db) => StoreError::Backend(format!("database: {}", db.message())),
        None => StoreError::Backend(format!("database: {err}")),
    }
}

/// `url` with any password replaced, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            let slash = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{user}:***@{host}{slash}{tail}")
        }
        None => url.to_string(),
    }
}

/// Whether `url` names a PostgreSQL-protocol database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn millis_now() -> i64 {
    ward_types::Timestamp::now().millis() as i64
}

fn key_text(key: Vec<u8>) -> Result<String> {
    String::from_utf8(key).map_err(|err| StoreError::Corrupt(err.to_string()))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`)
    /// and brings its schema up to date (see [`PostgresStore::migrate`]).
    pub fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url)?;
        store.migrate()?;
        Ok(store)
    }

    /// Connects without touching the schema; fails when the database
    /// cannot be reached.
    pub fn connect(url: &str) -> Result<Self> {
        if !is_postgres_url(url) {
            return Err(StoreError::Backend(format!(
                "`{}` is not a postgres:// URL",
                redacted(url)
            )));
        }
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| backend(format!("store URL `{}`: {err}", redacted(url))))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Backend(String::from(
                "sslmode=require is not supported: reach the database over a private \
                 network or a local TLS proxy (docs/OPERATIONS.md)",
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ward-postgres")
            .enable_all()
            .build()
            .map_err(backend)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(backend)?;
        let store = PostgresStore {
            runtime: Some(runtime),
            pool,
        };
        // Fail now, with the reason, rather than at the first request.
        store
            .run(|pool| async move {
                let client = client(&pool).await?;
                client.simple_query("SELECT 1").await.map_err(database)?;
                Ok(())
            })
            .map_err(|err| {
                StoreError::Backend(format!("cannot reach `{}`: {err}", redacted(url)))
            })?;
        Ok(store)
    }

    /// Applies every migration the database lacks, one replica at a time:
    /// under an advisory lock where the database has them, and in any case
    /// each in a transaction that records its version. Refuses a database
    /// that a newer Ward migrated.
    pub fn migrate(&self) -> Result<Vec<i32>> {
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            // Outside a transaction the lock is released as soon as it is
            // taken: this only asks whether the database has advisory
            // locks (CockroachDB does not; each statement of a migration
            // is safe to run twice there).
            let lockable = client
                .query_one("SELECT pg_advisory_xact_lock($1)::text", &[&MIGRATION_LOCK])
                .await
                .is_ok();
            apply_migrations(&mut client, lockable).await
        })
    }

    /// The schema version the database is at (0 when Ward never migrated it).
    pub fn schema_version(&self) -> Result<i32> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            schema_version(&client).await
        })
    }

    /// Runs `work` on the store's runtime and waits for it, from any
    /// thread (a runtime's worker included: the wait is on a channel).
    fn run<T, F, W>(&self, work: W) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
        W: FnOnce(Pool) -> F,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| backend("the store is closed"))?;
        let (done, answer) = mpsc::sync_channel(1);
        let future = work(self.pool.clone());
        runtime.spawn(async move {
            let _ = done.send(future.await);
        });
        answer
            .recv()
            .map_err(|_| backend("a database call was abandoned"))?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: that waits, and may not wait inside another runtime.
            runtime.shutdown_background();
        }
    }
}

async fn client(pool: &Pool) -> Result<Object> {
    pool.get().await.map_err(|err| match err {
        deadpool_postgres::PoolError::Backend(err) => database(err),
        other => backend(format!("database connection: {other}")),
    })
}

async fn schema_version(client: &tokio_postgres::Client) -> Result<i32> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'ward_migrations'",
            &[],
        )
        .await
        .map_err(database)?;
    if exists.is_none() {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ward_migrations", &[])
        .await
        .map_err(database)?;
    Ok(row.get(0))
}

async fn apply_migrations(client: &mut Object, lock: bool) -> Result<Vec<i32>> {
    let transaction = client.transaction().await.map_err(database)?;
    if lock {
        transaction
            .query_one("SELECT pg_advisory_xact_lock($1)::text", &[&MIGRATION_LOCK])
            .await
            .map_err(database)?;
    }
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ward_migrations (
                 version INT NOT NULL PRIMARY KEY,
                 applied_at_ms BIGINT NOT NULL
             )",
        )
        .await
        .map_err(database)?;
    let current: i32 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ward_migrations", &[])
        .await
        .map_err(database)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {current}, newer than this Ward's \
             {SCHEMA_VERSION}: run a Ward at least as new as the one that migrated it"
        )));
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        transaction.batch_execute(sql).await.map_err(database)?;
        transaction
            .execute(
                "INSERT INTO ward_migrations (version, applied_at_ms) VALUES ($1, $2)
                 ON CONFLICT (version) DO NOTHING",
                &[version, &millis_now()],
            )
            .await
            .map_err(database)?;
        applied.push(*version);
    }
    transaction.commit().await.map_err(database)?;
    for version in &applied {
        tracing::info!(version, "store schema migrated");
    }
    Ok(applied)
}

/// What `writes` leave behind, one entry per record (the last write to a
/// record wins, as if they were applied in order).
type Final = BTreeMap<(Kind, Vec<u8>), Option<Vec<u8>>>;

fn coalesce(writes: Vec<Write>) -> Final {
    let mut last = Final::new();
    for write in writes {
        match write {
            Write::Put { kind, key, value } => {
                last.insert((kind, key.into_bytes()), Some(value));
            }
            Write::Delete { kind, key } => {
                last.insert((kind, key.into_bytes()), None);
            }
        }
    }
    last
}

async fn apply<C: deadpool_postgres::GenericClient>(client: &C, writes: Final) -> Result<()> {
    let (mut put_kinds, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gone_kinds, mut gone_keys) = (Vec::new(), Vec::new());
    for ((kind, key), value) in writes {
        match value {
            Some(value) => {
                put_kinds.push(kind.name());
                put_keys.push(key);
                put_values.push(value);
            }
            None => {
                gone_kinds.push(kind.name());
                gone_keys.push(key);
            }
        }
    }
    if !put_keys.is_empty() {
        let statement = client
            .prepare_cached(
                "INSERT INTO ward_records (kind, key, value)
                 SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[])
                 ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(database)?;
        client
            .execute(&statement, &[&put_kinds, &put_keys, &put_values])
            .await
            .map_err(database)?;
    }
    if !gone_keys.is_empty() {
        let statement = client
            .prepare_cached(
                "DELETE FROM ward_records WHERE (kind, key) IN
                 (SELECT * FROM UNNEST($1::text[], $2::bytea[]))",
            )
            .await
            .map_err(database)?;
        client
            .execute(&statement, &[&gone_kinds, &gone_keys])
            .await
            .map_err(database)?;
    }
    Ok(())
}

/// Holds `ward_locks`' row in an open transaction; rolled back on drop.
struct ClusterLock {
    client: Option<Object>,
    runtime: tokio::runtime::Handle,
}

impl WriteLock for ClusterLock {}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let (done, finished) = mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            if client.batch_execute("ROLLBACK").await.is_err() {
                // A connection left inside a transaction must never go back
                // to the pool.
                drop(Object::take(client));
            }
            let _ = done.send(());
        });
        // Released before the next write of this replica asks for it.
        let _ = finished.recv_timeout(CONNECT_TIMEOUT);
    }
}

impl Store for PostgresStore {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.as_bytes().to_vec();
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let statement = client
                .prepare_cached("SELECT value FROM ward_records WHERE kind = $1 AND key = $2")
                .await
                .map_err(database)?;
            let row = client
                .query_opt(&statement, &[&kind.name(), &key])
                .await
                .map_err(database)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn scan(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let start = prefix.as_bytes().to_vec();
        let end = successor(&start);
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let rows = match end {
                Some(end) => {
                    let statement = client
                        .prepare_cached(
                            "SELECT key, value FROM ward_records
                             WHERE kind = $1 AND key >= $2 AND key < $3 ORDER BY key",
                        )
                        .await
                        .map_err(database)?;
                    client
                        .query(&statement, &[&kind.name(), &start, &end])
                        .await
                }
                None => {
                    let statement = client
                        .prepare_cached(
                            "SELECT key, value FROM ward_records
                             WHERE kind = $1 AND key >= $2 ORDER BY key",
                        )
                        .await
                        .map_err(database)?;
                    client.query(&statement, &[&kind.name(), &start]).await
                }
            }
            .map_err(database)?;
            rows.into_iter()
                .map(|row| Ok((key_text(row.get(0))?, row.get(1))))
                .collect()
        })
    }

    fn scan_rev(
        &self,
        kind: Kind,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let start = prefix.as_bytes().to_vec();
        let end = match before {
            Some(before) => Some(before.as_bytes().to_vec()),
            None => successor(&start),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let rows = match end {
                Some(end) => {
                    if end <= start {
                        return Ok(Vec::new());
                    }
                    let statement = client
                        .prepare_cached(
                            "SELECT key, value FROM ward_records
                             WHERE kind = $1 AND key >= $2 AND key < $3
                             ORDER BY key DESC LIMIT $4",
                        )
                        .await
                        .map_err(database)?;
                    client
                        .query(&statement, &[&kind.name(), &start, &end, &limit])
                        .await
                }
                None => {
                    let statement = client
                        .prepare_cached(
                            "SELECT key, value FROM ward_records
                             WHERE kind = $1 AND key >= $2 ORDER BY key DESC LIMIT $3",
                        )
                        .await
                        .map_err(database)?;
                    client
                        .query(&statement, &[&kind.name(), &start, &limit])
                        .await
                }
            }
            .map_err(database)?;
            rows.into_iter()
                .map(|row| Ok((key_text(row.get(0))?, row.get(1))))
                .collect()
        })
    }

    fn write(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let writes = coalesce(writes);
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let transaction = client.transaction().await.map_err(database)?;
            apply(&transaction, writes).await?;
            transaction.commit().await.map_err(database)
        })
    }

    fn write_buffered(&self, writes: &[Write]) -> Result<()> {
        // A commit here is durable already; there is nothing to buffer.
        self.write(writes.to_vec())
    }

    fn delete_prefix(&self, kind: Kind, prefix: &str) -> Result<usize> {
        let start = prefix.as_bytes().to_vec();
        let end = successor(&start);
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let removed =
                match end {
                    Some(end) => client
                        .execute(
                            "DELETE FROM ward_records WHERE kind = $1 AND key >= $2 AND key < $3",
                            &[&kind.name(), &start, &end],
                        )
                        .await,
                    None => {
                        client
                            .execute(
                                "DELETE FROM ward_records WHERE kind = $1 AND key >= $2",
                                &[&kind.name(), &start],
                            )
                            .await
                    }
                }
                .map_err(database)?;
            Ok(removed as usize)
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn commit(&self, expected: u64, writes: Vec<Write>, scopes: &[String]) -> Result<u64> {
        let writes = coalesce(writes);
        let scopes = scopes.join("\n");
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let transaction = client.transaction().await.map_err(database)?;
            // The row lock taken here is held to the commit: every other
            // commit waits, so revisions commit in order and without gaps.
            let revision: i64 = transaction
                .query_one(
                    "UPDATE ward_cluster SET revision = revision + 1 WHERE id = 1
                     RETURNING revision",
                    &[],
                )
                .await
                .map_err(database)?
                .get(0);
            let revision = revision as u64;
            if revision != expected + 1 {
                transaction.rollback().await.map_err(database)?;
                return Err(StoreError::Conflict {
                    expected,
                    actual: revision - 1,
                });
            }
            apply(&transaction, writes).await?;
            let number = revision as i64;
            transaction
                .execute(
                    "INSERT INTO ward_changes (revision, scopes, at_ms) VALUES ($1, $2, $3)",
                    &[&number, &scopes, &millis_now()],
                )
                .await
                .map_err(database)?;
            if number % 1000 == 0 {
                transaction
                    .execute(
                        "DELETE FROM ward_changes WHERE revision <= $1",
                        &[&(number - CHANGES_KEPT)],
                    )
                    .await
                    .map_err(database)?;
            }
            transaction.commit().await.map_err(database)?;
            Ok(revision)
        })
    }

    fn revision(&self) -> Result<u64> {
        self.run(|pool| async move {
            let client = client(&pool).await?;
            revision(&client).await
        })
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Option<Vec<Change>>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let client = client(&pool).await?;
            // The revision first: every change up to it is committed, so
            // the log read next holds all of them.
            let current = revision(&client).await?;
            if current <= after {
                return Ok(Some(Vec::new()));
            }
            let statement = client
                .prepare_cached(
                    "SELECT revision, scopes FROM ward_changes
                     WHERE revision > $1 AND revision <= $2 ORDER BY revision LIMIT $3",
                )
                .await
                .map_err(database)?;
            let rows = client
                .query(&statement, &[&(after as i64), &(current as i64), &limit])
                .await
                .map_err(database)?;
            let changes: Vec<Change> = rows
                .into_iter()
                .map(|row| {
                    let revision: i64 = row.get(0);
                    let scopes: String = row.get(1);
                    Change {
                        revision: revision as u64,
                        scopes: scopes
                            .split('\n')
                            .filter(|scope| !scope.is_empty())
                            .map(str::to_string)
                            .collect(),
                    }
                })
                .collect();
            if changes
                .first()
                .is_none_or(|first| first.revision != after + 1)
            {
                return Ok(None);
            }
            Ok(Some(changes))
        })
    }

    fn lock_writes(&self) -> Result<Option<Box<dyn WriteLock>>> {
        let handle = self
            .runtime
            .as_ref()
            .ok_or_else(|| backend("the store is closed"))?
            .handle()
            .clone();
        let client = self.run(|pool| async move {
            let client = client(&pool).await?;
            let locked = async {
                client.batch_execute("BEGIN").await?;
                client
                    .batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                    .await?;
                client
                    .query_one(
                        "SELECT name FROM ward_locks WHERE name = 'writes' FOR UPDATE",
                        &[],
                    )
                    .await
            }
            .await;
            match locked {
                Ok(_) => Ok(client),
                Err(err) => {
                    drop(Object::take(client));
                    Err(database(err))
                }
            }
        })?;
        Ok(Some(Box::new(ClusterLock {
            client: Some(client),
            runtime: handle,
        })))
    }

    fn lease(&self, name: &str, holder: &str, now_ms: u64, ttl_ms: u64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let now = now_ms as i64;
        let until = now.saturating_add(ttl_ms as i64);
        self.run(|pool| async move {
            let client = client(&pool).await?;
            let taken = client
                .execute(
                    "INSERT INTO ward_leases (name, holder, until_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE
                     SET holder = EXCLUDED.holder, until_ms = EXCLUDED.until_ms
                     WHERE ward_leases.until_ms < $4 OR ward_leases.holder = EXCLUDED.holder",
                    &[&name, &holder, &until, &now],
                )
                .await
                .map_err(database)?;
            Ok(taken == 1)
        })
    }

    fn take(&self, kind: Kind, key: &str, want: u64, limit: u64) -> Result<u64> {
        let key = key.as_bytes().to_vec();
        self.run(|pool| async move {
            let mut client = client(&pool).await?;
            let transaction = client.transaction().await.map_err(database)?;
            // Made first so that there is a row to lock.
            transaction
                .execute(
                    "INSERT INTO ward_records (kind, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (kind, key) DO NOTHING",
                    &[&kind.name(), &key, &b"0".to_vec()],
                )
                .await
                .map_err(database)?;
            let row = transaction
                .query_one(
                    "SELECT value FROM ward_records WHERE kind = $1 AND key = $2 FOR UPDATE",
                    &[&kind.name(), &key],
                )
                .await
                .map_err(database)?;
            let stored: Vec<u8> = row.get(0);
            let current = super::counter_value(Some(&stored))?;
            let granted = super::grant(current, want, limit);
            if granted > 0 {
                transaction
                    .execute(
                        "UPDATE ward_records SET value = $3 WHERE kind = $1 AND key = $2",
                        &[
                            &kind.name(),
                            &key,
                            &(current + granted).to_string().into_bytes(),
                        ],
                    )
                    .await
                    .map_err(database)?;
            }
            transaction.commit().await.map_err(database)?;
            Ok(granted)
        })
    }

    fn shared(&self) -> bool {
        true
    }
}

async fn revision(client: &Object) -> Result<u64> {
    let row = client
        .query_one("SELECT revision FROM ward_cluster WHERE id = 1", &[])
        .await
        .map_err(database)?;
    let revision: i64 = row.get(0);
    Ok(revision as u64)
}
