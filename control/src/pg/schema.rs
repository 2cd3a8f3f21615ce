//! The tables, created idempotently at start by whichever instance comes
//! first (under an advisory lock, so replicas starting together do not
//! race on `CREATE TABLE`), and the schema version they carry.

use tokio_postgres::Client;

/// The schema version this build writes. An instance refuses to start on
/// a database whose schema is newer (written by a later release).
pub const SCHEMA_VERSION: i32 = 1;

/// The channel new versions are announced on; the payload is
/// `name:version` and is only a hint (the table is read, never the
/// payload's claims).
pub const CHANNEL: &str = "mcp_guard_bundles";

/// Advisory lock key taken while creating or migrating tables.
const SCHEMA_LOCK: i64 = 0x6d63_705f_6775_6172; // "mcp_guar"

/// Size limit enforced by the database too, so a row the service would
/// refuse is refused at write time: the engine's bundle limit.
const CREATE: &str = "
CREATE TABLE IF NOT EXISTS mcp_guard_schema (
    id integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS mcp_guard_bundles (
    name text PRIMARY KEY,
    latest bigint NOT NULL CHECK (latest >= 0)
);
CREATE TABLE IF NOT EXISTS mcp_guard_versions (
    name text NOT NULL REFERENCES mcp_guard_bundles (name),
    version bigint NOT NULL CHECK (version > 0),
    bytes bytea NOT NULL CHECK (octet_length(bytes) <= 8388608),
    signature text NOT NULL,
    digest text NOT NULL,
    stored_at bigint NOT NULL,
    source text NOT NULL,
    by_actor text NOT NULL,
    PRIMARY KEY (name, version)
);
-- Added after schema version 1 (nullable, so older replicas keep writing).
ALTER TABLE mcp_guard_versions ADD COLUMN IF NOT EXISTS signed_by text;
CREATE TABLE IF NOT EXISTS mcp_guard_fleet (
    bundle text NOT NULL,
    instance text NOT NULL,
    pod text,
    active bigint,
    last_error text,
    wait_secs bigint NOT NULL,
    last_seen bigint NOT NULL,
    PRIMARY KEY (bundle, instance)
);
CREATE INDEX IF NOT EXISTS mcp_guard_fleet_last_seen ON mcp_guard_fleet (last_seen);
";

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A later release migrated the database.
    #[error("the database schema is version {found}, this build knows {SCHEMA_VERSION}: upgrade this instance")]
    Newer {
        /// The version found.
        found: i32,
    },
    /// The database refused a statement.
    #[error("cannot create the tables: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// Creates the tables if missing and records [`SCHEMA_VERSION`]; checks
/// that the database is not newer than this build.
pub async fn ensure(client: &mut Client) -> Result<(), SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(CREATE).await?;
    tx.execute(
        "INSERT INTO mcp_guard_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        &[&SCHEMA_VERSION],
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT version FROM mcp_guard_schema WHERE id = 1", &[])
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(SchemaError::Newer { found });
    }
    tx.commit().await?;
    Ok(())
}
