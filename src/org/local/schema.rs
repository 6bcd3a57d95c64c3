//! Tables, indexes and the stored catalogue of the local org (placeholder).

use rusqlite::Connection;

use crate::metadata::Catalogue;
use crate::org::OrgError;

pub(crate) fn configure(_connection: &Connection) -> rusqlite::Result<()> {
    Ok(())
}

pub(crate) fn create(_connection: &Connection, _catalogue: &Catalogue) -> Result<(), OrgError> {
    Ok(())
}

pub(crate) fn load_catalogue(_connection: &Connection) -> Result<Catalogue, OrgError> {
    Ok(Catalogue::builtin())
}
