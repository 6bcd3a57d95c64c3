//! Unicode case- and accent-insensitive comparison for the local org (placeholder).

use rusqlite::Connection;

pub(crate) fn register(_connection: &Connection) -> rusqlite::Result<()> {
    Ok(())
}
