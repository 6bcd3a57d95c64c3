//! Versioned migrations of the state store: `schema_migrations` records each applied version;
//! pending versions are applied in order inside one transaction; a database written by a newer
//! fetchflow is refused. One file per version (`v1.rs`, ...), never edited once released.

mod v1;
mod v2;

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;

/// One schema version: the SQL that takes the previous version to this one.
struct Migration {
    version: i64,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: v1::SQL,
    },
    Migration {
        version: 2,
        sql: v2::SQL,
    },
];

/// The newest schema version this build knows.
pub(crate) const SUPPORTED_VERSION: i64 = 2;

/// Brings the database to [`SUPPORTED_VERSION`]. Safe to call on every open and from several
/// processes at once: the check and the migrations run in one immediate transaction.
pub(crate) fn migrate(connection: &mut Connection) -> Result<i64, StoreError> {
    let name = display_name(connection);
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|error| classify(&name, error))?;
    let (tables, has_migrations): (i64, bool) = transaction
        .query_row(
            "SELECT count(*), coalesce(max(name = 'schema_migrations'), 0) FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(|error| classify(&name, error))?;
    // Another program's database (a local org file, say) is not taken over.
    if tables > 0 && !has_migrations {
        return Err(StoreError::NotAStateStore {
            name,
            detail: "it has tables but no schema_migrations".into(),
        });
    }
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )?;
    let found: i64 = transaction.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    if found > SUPPORTED_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SUPPORTED_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        transaction.execute_batch(migration.sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [migration.version],
        )?;
    }
    transaction.commit()?;
    Ok(SUPPORTED_VERSION)
}

/// Maps "file is not a database" to [`StoreError::NotAStateStore`], other errors as they are.
pub(crate) fn not_a_database(connection: &Connection, error: rusqlite::Error) -> StoreError {
    classify(&display_name(connection), error)
}

fn classify(name: &str, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotAStateStore {
            name: name.into(),
            detail: "not a SQLite database".into(),
        },
        _ => StoreError::Storage(error),
    }
}

fn display_name(connection: &Connection) -> String {
    connection
        .path()
        .filter(|path| !path.is_empty())
        .unwrap_or("the database")
        .to_string()
}
