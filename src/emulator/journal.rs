//! Copies of the rows a multi-write request touches, taken before it writes, so the request
//! can be undone as a whole: the local org keeps every record's successful write, while
//! Dataverse change sets and bulk messages on standard tables are all-or-nothing.
//!
//! A copy is the whole stored row (every column, including `createdon` and the `@target`
//! companions), or "absent"; restoring deletes the row and re-inserts the copy, in reverse
//! order. Custom API calls also record their idempotency key, whose log entry is removed.
//! The caller holds the emulator's write gate from the first copy to the restore.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value as SqlValue;

use crate::emulator::error::DvError;
use crate::org::local::{LocalOrg, quote};
use crate::org::odata::normalize_guid;

/// A journal shared by the requests of one change set.
pub(crate) type Shared = Arc<Mutex<Journal>>;

/// The table where the local org logs custom API calls by idempotency key.
const API_LOG: &str = "_fetchflow_api_calls";

#[derive(Debug, Default)]
pub(crate) struct Journal {
    entries: Vec<Entry>,
    seen: HashSet<(String, String)>,
}

#[derive(Debug)]
enum Entry {
    Row {
        entity: String,
        primary_id: String,
        id: String,
        /// Column names and values; `None` when the row did not exist.
        copy: Option<Vec<(String, SqlValue)>>,
    },
    ApiCall {
        key: String,
    },
}

impl Journal {
    /// Copies row `id` of `entity` unless already copied (the first copy is the one to
    /// restore). Unknown tables and ids that are not GUIDs are skipped: their write fails.
    pub(crate) fn copy_row(
        &mut self,
        org: &LocalOrg,
        entity: &str,
        id: &str,
    ) -> Result<(), DvError> {
        let Some(meta) = org.catalogue().entity(entity) else {
            return Ok(());
        };
        let Some(id) = normalize_guid(id) else {
            return Ok(());
        };
        if !self.seen.insert((entity.to_owned(), id.clone())) {
            return Ok(());
        }
        let connection = org.connection();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT * FROM {} WHERE {} = ?1",
            quote(entity),
            quote(&meta.primary_id)
        ))?;
        let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let mut rows = statement.query([&id])?;
        let copy = match rows.next()? {
            Some(row) => Some(
                names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| Ok((name.clone(), row.get::<_, SqlValue>(index)?)))
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            ),
            None => None,
        };
        self.entries.push(Entry::Row {
            entity: entity.to_owned(),
            primary_id: meta.primary_id.clone(),
            id,
            copy,
        });
        Ok(())
    }

    /// Notes a custom API call's idempotency key, whose log entry a restore removes.
    pub(crate) fn note_api_call(&mut self, key: &str) {
        self.entries.push(Entry::ApiCall {
            key: key.to_owned(),
        });
    }

    /// Puts every copied row back, newest first, in one transaction.
    pub(crate) fn restore(&mut self, org: &LocalOrg) -> Result<(), DvError> {
        let mut connection = org.connection();
        let transaction = connection.transaction()?;
        for entry in self.entries.drain(..).rev() {
            match entry {
                Entry::Row {
                    entity,
                    primary_id,
                    id,
                    copy,
                } => {
                    transaction.execute(
                        &format!(
                            "DELETE FROM {} WHERE {} = ?1",
                            quote(&entity),
                            quote(&primary_id)
                        ),
                        [&id],
                    )?;
                    if let Some(columns) = copy {
                        let names: Vec<String> =
                            columns.iter().map(|(name, _)| quote(name)).collect();
                        let placeholders: Vec<String> =
                            (1..=columns.len()).map(|n| format!("?{n}")).collect();
                        transaction.execute(
                            &format!(
                                "INSERT INTO {} ({}) VALUES ({})",
                                quote(&entity),
                                names.join(", "),
                                placeholders.join(", ")
                            ),
                            rusqlite::params_from_iter(columns.iter().map(|(_, value)| value)),
                        )?;
                    }
                }
                Entry::ApiCall { key } => {
                    // The log exists once any call ran; a missing table means nothing to undo.
                    let _ = transaction
                        .execute(&format!("DELETE FROM {API_LOG} WHERE key = ?1"), [&key]);
                }
            }
        }
        transaction.commit()?;
        self.seen.clear();
        Ok(())
    }
}
