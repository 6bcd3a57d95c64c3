//! The row format of DESIGN 5.2 on the local org: parsing an import file, checking every value
//! against the catalogue, importing all or nothing, and exporting an entity.
//!
//! Values, per column type:
//! - text: a JSON string, at most the column's maximum length;
//! - whole numbers: a JSON integer within the column's range; choice, state and status: an
//!   integer that is one of the column's options (and a `statuscode` valid in the `statecode`);
//!   multi-select choice: an array of option values;
//! - money, decimal, double: a JSON number within the column's range;
//! - boolean: `true` or `false`;
//! - date-time: `YYYY-MM-DDTHH:MM:SSZ`; an ISO date (`2026-03-15`, midnight UTC) or an RFC 3339
//!   date-time with an offset or fractions of a second is accepted and normalized to UTC, whole
//!   seconds;
//! - GUIDs: any case, braces optional; stored and exported lower-case without braces;
//! - lookups: `"<guid>"` or `"<entity>:<guid>"` (the entity must be one of the column's targets).
//!   A polymorphic lookup (owner, customer, regarding) stores its target table beside the id; a
//!   bare GUID is resolved by finding the row among the target tables (in the file or the org)
//!   and is an error when it is found in none or several. Export prints polymorphic lookups as
//!   `"<entity>:<guid>"` and single-target lookups as `"<guid>"`, so an export imports again.
//!   Import does not require referenced rows to exist (files may be loaded in any order and may
//!   hold a subset of an org); writes (`write.rs`) do check.
//! - `null` or an absent key: no value.
//!
//! Import also fills what Dataverse fills on create: a primary key when the row has none (a GUID
//! derived from the entity and the row's content, so re-running an import is reproducible),
//! `statecode`/`statuscode` (the first state and its default status, or the state of a given
//! `statuscode`), and `createdon`/`modifiedon` (the org clock's now). Read-only columns such as
//! `fullname` or `createdon` may be imported: import loads data, it does not run business rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::compile::values::is_guid;
use crate::diagnostics::did_you_mean;
use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta};
use crate::org::local::{LocalOrg, is_polymorphic, quote, sqlite, target_column};
use crate::org::{OrgError, Row};

/// Rows keyed by entity logical name.
pub type RowSet = BTreeMap<String, Vec<Row>>;

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Rows imported, all entities together.
    pub rows: usize,
    /// Rows imported per entity.
    pub entities: BTreeMap<String, usize>,
}

/// Why an import wrote nothing: where the problem is (file position for malformed JSON;
/// entity, row index and column for a bad value) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub entity: Option<String>,
    /// 0-based index of the row in its entity's array.
    pub row: Option<usize>,
    pub column: Option<String>,
    /// 1-based line and column in the import text, for malformed JSON.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl ImportError {
    fn at(entity: &str, row: Option<usize>, column: Option<&str>, message: String) -> Self {
        ImportError {
            entity: Some(entity.to_string()),
            row,
            column: column.map(str::to_string),
            position: None,
            message,
        }
    }

    fn general(message: String) -> Self {
        ImportError {
            entity: None,
            row: None,
            column: None,
            position: None,
            message,
        }
    }

    /// `account[3].revenue`, `account[3]`, `account` or empty: where in the row set.
    pub fn path(&self) -> String {
        let mut path = self.entity.clone().unwrap_or_default();
        if let Some(row) = self.row {
            path.push_str(&format!("[{row}]"));
        }
        if let Some(column) = &self.column {
            path.push('.');
            path.push_str(column);
        }
        path
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.position {
            return write!(f, "line {line}, column {column}: {}", self.message);
        }
        let path = self.path();
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

impl std::error::Error for ImportError {}

/// Parses import text in the row format. Malformed JSON, a top level that is not an object of
/// arrays, and a key given twice in one object are errors with their line and column.
pub(crate) fn parse_rowset(text: &str) -> Result<RowSet, ImportError> {
    serde_json::from_str::<StrictRowSet>(text)
        .map(|strict| strict.0)
        .map_err(|error| ImportError {
            entity: None,
            row: None,
            column: None,
            position: Some((error.line(), error.column())),
            message: strip_position(&error.to_string()),
        })
}

/// serde_json appends " at line L column C"; the position is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

impl LocalOrg {
    /// Parses import text in the row format and imports it, all or nothing.
    pub fn import_json(&self, text: &str) -> Result<ImportReport, ImportError> {
        let rows = parse_rowset(text)?;
        import(self, &rows)
    }

    /// Writes an entity's rows in the row format, ordered by primary key, one row per line,
    /// without holding them all in memory. Returns the number of rows. An org problem (unknown
    /// entity, storage) comes back as an `io::Error` of kind `Other` wrapping the [`OrgError`].
    pub fn export_to(&self, entity: &str, out: &mut dyn std::io::Write) -> std::io::Result<usize> {
        let org_error = |error: OrgError| std::io::Error::other(error);
        let meta = entity_or_error(self.catalogue(), entity).map_err(org_error)?;
        let connection = self.connection();
        let reader = ExportReader::new(meta);
        let mut statement = connection
            .prepare(&reader.sql)
            .map_err(|error| org_error(sqlite(error)))?;
        let mut rows = statement
            .query([])
            .map_err(|error| org_error(sqlite(error)))?;
        write!(out, "{{{}: [", Value::String(entity.to_string()))?;
        let mut count = 0;
        while let Some(sql_row) = rows.next().map_err(|error| org_error(sqlite(error)))? {
            let row = reader
                .read(sql_row)
                .map_err(|error| org_error(sqlite(error)))?;
            let separator = if count == 0 { "\n  " } else { ",\n  " };
            write!(out, "{separator}{}", Value::Object(row))?;
            count += 1;
        }
        let close = if count == 0 { "]}" } else { "\n]}" };
        writeln!(out, "{close}")?;
        Ok(count)
    }
}

/// Imports every row of `rows` in one transaction, after checking each value; any problem
/// leaves the org unchanged.
pub(crate) fn import(org: &LocalOrg, rows: &RowSet) -> Result<ImportReport, ImportError> {
    let catalogue = org.catalogue();
    let mut entities: Vec<(&EntityMeta, &Vec<Row>)> = Vec::with_capacity(rows.len());
    for (name, entity_rows) in rows {
        let meta = catalogue.entity(name).ok_or_else(|| {
            ImportError::at(name, None, None, unknown_entity_message(catalogue, name))
        })?;
        entities.push((meta, entity_rows));
    }

    // Primary keys first: given ones checked and unique in the file, missing ones derived from
    // the content. Polymorphic lookups given as a bare GUID resolve against this map.
    let mut keys: Vec<Vec<String>> = Vec::with_capacity(entities.len());
    let mut file_ids: HashMap<String, Vec<&str>> = HashMap::new();
    for (meta, entity_rows) in &entities {
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(entity_rows.len());
        let mut content_seen: HashMap<[u8; 32], u32> = HashMap::new();
        let mut entity_keys = Vec::with_capacity(entity_rows.len());
        for (index, row) in entity_rows.iter().enumerate() {
            let key = match row.get(&meta.primary_id) {
                Some(Value::Null) | None => {
                    let digest = content_digest(&meta.logical_name, row);
                    let occurrence = content_seen.entry(digest).or_insert(0);
                    let id = derived_id(&digest, *occurrence);
                    *occurrence += 1;
                    id
                }
                Some(value) => normalize_guid(value).map_err(|message| {
                    ImportError::at(
                        &meta.logical_name,
                        Some(index),
                        Some(&meta.primary_id),
                        message,
                    )
                })?,
            };
            if let Some(first) = seen.insert(key.clone(), index) {
                return Err(ImportError::at(
                    &meta.logical_name,
                    Some(index),
                    Some(&meta.primary_id),
                    format!(
                        "duplicate primary key {key}: {}[{first}] has the same id",
                        meta.logical_name
                    ),
                ));
            }
            file_ids
                .entry(key.clone())
                .or_default()
                .push(meta.logical_name.as_str());
            entity_keys.push(key);
        }
        keys.push(entity_keys);
    }

    let now = format_datetime(org.now());
    let mut connection = org.connection();
    let transaction = connection
        .transaction()
        .map_err(|error| ImportError::general(sqlite(error).message))?;
    let mut report = ImportReport::default();
    for ((meta, entity_rows), entity_keys) in entities.iter().zip(&keys) {
        let layout = Layout::new(meta);
        let mut insert = transaction
            .prepare(&layout.insert_sql())
            .map_err(|error| ImportError::general(sqlite(error).message))?;
        let mut values: Vec<SqlValue> = vec![SqlValue::Null; layout.width];
        for (index, (row, key)) in entity_rows.iter().zip(entity_keys).enumerate() {
            let at = |column: &str, message: String| {
                ImportError::at(&meta.logical_name, Some(index), Some(column), message)
            };
            values.fill(SqlValue::Null);
            values[layout.primary] = SqlValue::Text(key.clone());
            for (column, value) in row {
                if column == &meta.primary_id {
                    continue;
                }
                let Some(&(slot, companion)) = layout.slots.get(column.as_str()) else {
                    return Err(at(column, unknown_column_message(meta, column)));
                };
                let attribute = &meta.attributes[layout.attribute_index[slot]];
                let converted = to_sql(attribute, value, &mut |guid| {
                    resolve_target(&transaction, org.catalogue(), attribute, guid, &file_ids)
                })
                .map_err(|message| at(column, message))?;
                values[slot] = converted.value;
                if let (Some(companion), Some(target)) = (companion, converted.target) {
                    values[companion] = target;
                }
            }
            fill_state(meta, &layout, &mut values)
                .map_err(|(column, message)| at(column, message))?;
            for column in ["createdon", "modifiedon"] {
                if let Some(&(slot, _)) = layout.slots.get(column)
                    && values[slot] == SqlValue::Null
                {
                    values[slot] = SqlValue::Text(now.clone());
                }
            }
            match insert.execute(rusqlite::params_from_iter(values.iter())) {
                Ok(_) => {}
                Err(error) if is_primary_key_violation(&error) => {
                    let generated = row.get(&meta.primary_id).is_none_or(Value::is_null);
                    let hint = if generated {
                        " (the id was derived from the row's content: was this file imported before?)"
                    } else {
                        ""
                    };
                    return Err(at(
                        &meta.primary_id,
                        format!(
                            "duplicate primary key: a {} with id {key} already exists{hint}",
                            meta.logical_name
                        ),
                    ));
                }
                Err(error) => return Err(at(&meta.primary_id, sqlite(error).message)),
            }
        }
        report.rows += entity_rows.len();
        *report
            .entities
            .entry(meta.logical_name.clone())
            .or_default() += entity_rows.len();
    }
    transaction
        .commit()
        .map_err(|error| ImportError::general(sqlite(error).message))?;
    // Refresh the planner's statistics where the import changed a table a lot, so that a large
    // import does not leave queries planned for the empty tables. Cheap when nothing changed.
    if let Err(error) = connection.execute_batch("PRAGMA optimize") {
        return Err(ImportError::general(sqlite(error).message));
    }
    Ok(report)
}

/// All rows of an entity in the row format, ordered by primary key.
pub(crate) fn export(org: &LocalOrg, entity: &str) -> Result<RowSet, OrgError> {
    let meta = entity_or_error(org.catalogue(), entity)?;
    let connection = org.connection();
    let reader = ExportReader::new(meta);
    let mut statement = connection.prepare(&reader.sql).map_err(sqlite)?;
    let mut rows = statement.query([]).map_err(sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        out.push(reader.read(row).map_err(sqlite)?);
    }
    Ok(RowSet::from([(entity.to_string(), out)]))
}

fn entity_or_error<'a>(catalogue: &'a Catalogue, entity: &str) -> Result<&'a EntityMeta, OrgError> {
    catalogue.entity(entity).ok_or_else(|| {
        OrgError::new(
            "QueryBuilderNoEntity",
            -2147217150,
            unknown_entity_message(catalogue, entity),
        )
    })
}

pub(crate) fn unknown_entity_message(catalogue: &Catalogue, entity: &str) -> String {
    let hint = did_you_mean(entity, catalogue.entity_names())
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default();
    format!("unknown entity `{entity}`{hint}")
}

pub(crate) fn unknown_column_message(meta: &EntityMeta, column: &str) -> String {
    let hint = did_you_mean(column, meta.attribute_names())
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default();
    format!("{} has no column `{column}`{hint}", meta.logical_name)
}

/// The columns of an entity's table in order, with companion columns of polymorphic lookups.
pub(crate) struct Layout {
    /// Quoted column names in table order.
    pub(crate) columns: Vec<String>,
    /// Attribute name → (slot, companion slot).
    pub(crate) slots: HashMap<String, (usize, Option<usize>)>,
    /// Slot → index into `EntityMeta::attributes` (companion slots point at their lookup).
    pub(crate) attribute_index: Vec<usize>,
    pub(crate) primary: usize,
    pub(crate) width: usize,
    pub(crate) table: String,
}

impl Layout {
    pub(crate) fn new(meta: &EntityMeta) -> Self {
        let mut layout = Layout {
            columns: Vec::new(),
            slots: HashMap::new(),
            attribute_index: Vec::new(),
            primary: 0,
            width: 0,
            table: quote(&meta.logical_name),
        };
        for (index, attribute) in meta.attributes.iter().enumerate() {
            let slot = layout.columns.len();
            layout.columns.push(quote(&attribute.logical_name));
            layout.attribute_index.push(index);
            let companion = is_polymorphic(attribute).then(|| {
                layout
                    .columns
                    .push(quote(&target_column(&attribute.logical_name)));
                layout.attribute_index.push(index);
                slot + 1
            });
            if attribute.logical_name == meta.primary_id {
                layout.primary = slot;
            }
            layout
                .slots
                .insert(attribute.logical_name.clone(), (slot, companion));
        }
        layout.width = layout.columns.len();
        layout
    }

    pub(crate) fn insert_sql(&self) -> String {
        let placeholders: Vec<String> = (1..=self.width).map(|n| format!("?{n}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            self.columns.join(", "),
            placeholders.join(", ")
        )
    }
}

/// Defaults `statecode`/`statuscode` as Dataverse does on create and checks the pair.
fn fill_state(
    meta: &EntityMeta,
    layout: &Layout,
    values: &mut [SqlValue],
) -> Result<(), (&'static str, String)> {
    if meta.states.is_empty() {
        return Ok(());
    }
    let (Some(&(state_slot, _)), Some(&(status_slot, _))) = (
        layout.slots.get("statecode"),
        layout.slots.get("statuscode"),
    ) else {
        return Ok(());
    };
    let state = match &values[state_slot] {
        SqlValue::Integer(value) => Some(*value),
        _ => None,
    };
    let status = match &values[status_slot] {
        SqlValue::Integer(value) => Some(*value),
        _ => None,
    };
    let (state, status) = match (state, status) {
        (Some(state), Some(status)) => (state, status),
        (Some(state), None) => {
            let default = meta
                .state(i32::try_from(state).unwrap_or(i32::MIN))
                .and_then(|state| state.default_status())
                .map_or(state, i64::from);
            (state, default)
        }
        (None, Some(status)) => {
            let owner = meta.states.iter().find(|candidate| {
                candidate
                    .statuses
                    .iter()
                    .any(|option| i64::from(option.value) == status)
            });
            (owner.map_or(0, |state| i64::from(state.value)), status)
        }
        (None, None) => {
            let first = &meta.states[0];
            (
                i64::from(first.value),
                first.default_status().map_or(0, i64::from),
            )
        }
    };
    let narrow = |value: i64| i32::try_from(value).unwrap_or(i32::MIN);
    meta.valid_status(narrow(state), narrow(status))
        .map_err(|message| ("statuscode", message))?;
    values[state_slot] = SqlValue::Integer(state);
    values[status_slot] = SqlValue::Integer(status);
    Ok(())
}

/// A value ready for its column, plus the target table of a polymorphic lookup.
#[derive(Debug)]
pub(crate) struct Converted {
    pub(crate) value: SqlValue,
    /// `Some` only for polymorphic lookups (NULL when the value is null).
    pub(crate) target: Option<SqlValue>,
}

/// Checks a row-format value against its column and converts it to what the column stores.
/// `resolve` finds the target table of a bare GUID given for a polymorphic lookup.
pub(crate) fn to_sql(
    attribute: &AttributeMeta,
    value: &Value,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Converted, String> {
    let polymorphic = is_polymorphic(attribute);
    let plain = |value: SqlValue| Converted {
        value,
        target: None,
    };
    if value.is_null() {
        return Ok(Converted {
            value: SqlValue::Null,
            target: polymorphic.then_some(SqlValue::Null),
        });
    }
    match attribute.kind {
        AttributeType::String | AttributeType::Memo => {
            let Value::String(text) = value else {
                return Err(expected("a string", value));
            };
            if let Some(max) = attribute.max_length {
                let length = text.chars().count();
                if length > max as usize {
                    return Err(format!(
                        "{length} characters is longer than the maximum of {max}"
                    ));
                }
            }
            Ok(plain(SqlValue::Text(text.clone())))
        }
        AttributeType::Integer | AttributeType::BigInt => {
            let number = whole_number(value).ok_or_else(|| expected("a whole number", value))?;
            if attribute.kind == AttributeType::Integer && i32::try_from(number).is_err() {
                return Err(format!("{number} is outside the 32-bit integer range"));
            }
            check_range(attribute, number as f64)?;
            Ok(plain(SqlValue::Integer(number)))
        }
        AttributeType::Picklist | AttributeType::State | AttributeType::Status => {
            let number = whole_number(value).ok_or_else(|| expected("an option value", value))?;
            check_option(attribute, number)?;
            Ok(plain(SqlValue::Integer(number)))
        }
        AttributeType::MultiSelectPicklist => {
            let Value::Array(items) = value else {
                return Err(expected("an array of option values", value));
            };
            let mut options = Vec::with_capacity(items.len());
            for item in items {
                let number = whole_number(item).ok_or_else(|| expected("an option value", item))?;
                check_option(attribute, number)?;
                options.push(number);
            }
            options.sort_unstable();
            options.dedup();
            Ok(plain(SqlValue::Text(
                serde_json::to_string(&options).unwrap_or_else(|_| "[]".to_string()),
            )))
        }
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => {
            let number = value
                .as_f64()
                .filter(|number| number.is_finite())
                .ok_or_else(|| expected("a number", value))?;
            check_range(attribute, number)?;
            Ok(plain(SqlValue::Real(number)))
        }
        AttributeType::Boolean => match value {
            Value::Bool(flag) => Ok(plain(SqlValue::Integer(i64::from(*flag)))),
            _ => Err(expected("true or false", value)),
        },
        AttributeType::DateTime => {
            let Value::String(text) = value else {
                return Err(expected("a date-time string", value));
            };
            normalize_datetime(text).map(|text| plain(SqlValue::Text(text)))
        }
        AttributeType::Uniqueidentifier => {
            normalize_guid(value).map(|id| plain(SqlValue::Text(id)))
        }
        AttributeType::Lookup | AttributeType::Owner | AttributeType::Customer => {
            let Value::String(text) = value else {
                return Err(expected("a GUID or \"<entity>:<guid>\"", value));
            };
            let (entity, id) = match text.split_once(':') {
                Some((entity, id)) => {
                    let entity = entity.trim();
                    if !attribute.targets.iter().any(|target| target == entity) {
                        return Err(format!(
                            "`{entity}` is not a target of {}; expected {}",
                            attribute.logical_name,
                            describe_targets(attribute)
                        ));
                    }
                    (Some(entity.to_string()), id)
                }
                None => (None, text.as_str()),
            };
            let id = normalize_guid(&Value::String(id.trim().to_string()))?;
            if !polymorphic {
                return Ok(plain(SqlValue::Text(id)));
            }
            let target = match entity {
                Some(entity) => entity,
                None => resolve(&id)?,
            };
            Ok(Converted {
                value: SqlValue::Text(id),
                target: Some(SqlValue::Text(target)),
            })
        }
    }
}

fn describe_targets(attribute: &AttributeMeta) -> String {
    attribute
        .targets
        .iter()
        .map(|target| format!("`{target}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Finds which target table holds `id`, among the rows of the file and of the org.
fn resolve_target(
    connection: &Connection,
    catalogue: &Catalogue,
    attribute: &AttributeMeta,
    id: &str,
    file_ids: &HashMap<String, Vec<&str>>,
) -> Result<String, String> {
    let mut found: Vec<&str> = Vec::new();
    for target in &attribute.targets {
        let in_file = file_ids
            .get(id)
            .is_some_and(|entities| entities.contains(&target.as_str()));
        let in_org = !in_file && row_exists(connection, catalogue, target, id).unwrap_or(false);
        if in_file || in_org {
            found.push(target);
        }
    }
    resolved(attribute, id, &found)
}

/// The single target found for a bare GUID, or an error asking for `<entity>:<guid>`.
pub(crate) fn resolved(
    attribute: &AttributeMeta,
    id: &str,
    found: &[&str],
) -> Result<String, String> {
    match found {
        [single] => Ok((*single).to_string()),
        [] => Err(format!(
            "`{id}` is not a row of {}; write the table as \"<entity>:{id}\"",
            describe_targets(attribute)
        )),
        several => Err(format!(
            "`{id}` is a row of {}; write the table as \"<entity>:{id}\"",
            several.join(" and ")
        )),
    }
}

/// Whether `entity` has a row with primary key `id` (prepared once per connection).
pub(crate) fn row_exists(
    connection: &Connection,
    catalogue: &Catalogue,
    entity: &str,
    id: &str,
) -> rusqlite::Result<bool> {
    let Some(meta) = catalogue.entity(entity) else {
        return Ok(false);
    };
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} = ?1",
        quote(&meta.logical_name),
        quote(&meta.primary_id)
    );
    let mut statement = connection.prepare_cached(&sql)?;
    Ok(statement.query_row([id], |_| Ok(())).optional()?.is_some())
}

fn check_option(attribute: &AttributeMeta, number: i64) -> Result<(), String> {
    let valid = i32::try_from(number)
        .ok()
        .and_then(|value| attribute.option(value))
        .is_some();
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{number} is not an option of {}; valid values: {}",
            attribute.logical_name,
            attribute.describe_options()
        ))
    }
}

fn check_range(attribute: &AttributeMeta, number: f64) -> Result<(), String> {
    if let Some(min) = attribute.min_value
        && number < min
    {
        return Err(format!("{number} is less than the minimum of {min}"));
    }
    if let Some(max) = attribute.max_value
        && number > max
    {
        return Err(format!("{number} is greater than the maximum of {max}"));
    }
    Ok(())
}

fn whole_number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                .map(|float| float as i64)
        }),
        _ => None,
    }
}

/// "expected a number, found \"lots\"".
fn expected(what: &str, found: &Value) -> String {
    let mut shown = found.to_string();
    if shown.chars().count() > 60 {
        shown = shown.chars().take(57).collect::<String>() + "...";
    }
    format!("expected {what}, found {shown}")
}

/// A GUID in any case, braces optional → lower-case without braces.
pub(crate) fn normalize_guid(value: &Value) -> Result<String, String> {
    let Value::String(text) = value else {
        return Err(expected("a GUID", value));
    };
    let trimmed = text.trim();
    if !is_guid(trimmed) {
        return Err(expected(
            "a GUID such as 5e000000-0000-4000-8000-000000000001",
            value,
        ));
    }
    Ok(trimmed
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, or a date, or an RFC 3339 date-time with offset → UTC, whole seconds.
pub(crate) fn normalize_datetime(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let parsed = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%SZ")
        .map(|naive| naive.and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(trimmed).map(|datetime| datetime.to_utc()))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|naive| naive.and_utc())
        });
    let Some(datetime) = parsed else {
        return Err(format!(
            "expected a date-time such as 2026-03-15T10:00:00Z (or a date, or an offset), found {}",
            Value::String(text.to_string())
        ));
    };
    let year = chrono::Datelike::year(&datetime);
    if !(1753..=9999).contains(&year) {
        return Err(format!(
            "{} is outside the supported range 1753-01-01 to 9999-12-31",
            Value::String(text.to_string())
        ));
    }
    Ok(format_datetime(datetime))
}

pub(crate) fn format_datetime(datetime: DateTime<Utc>) -> String {
    datetime.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// SHA-256 of the entity name and the row (serde_json maps are sorted, so this is canonical).
fn content_digest(entity: &str, row: &Row) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(entity.as_bytes());
    hasher.update([0]);
    hasher.update(Value::Object(row.clone()).to_string().as_bytes());
    hasher.finalize().into()
}

/// A version-5-style GUID from a digest and the occurrence of identical content in the file.
fn derived_id(digest: &[u8; 32], occurrence: u32) -> String {
    let mut bytes = [0u8; 16];
    if occurrence == 0 {
        bytes.copy_from_slice(&digest[..16]);
    } else {
        let mut hasher = Sha256::new();
        hasher.update(digest);
        hasher.update(occurrence.to_le_bytes());
        let again: [u8; 32] = hasher.finalize().into();
        bytes.copy_from_slice(&again[..16]);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_guid(&bytes)
}

/// Lower-case 8-4-4-4-12 text of 16 bytes.
pub(crate) fn format_guid(bytes: &[u8; 16]) -> String {
    let mut buffer = [0u8; 36];
    write_guid(bytes, &mut buffer);
    String::from_utf8_lossy(&buffer).into_owned()
}

/// Writes the 8-4-4-4-12 text of 16 bytes into a buffer (no allocation).
pub(crate) fn write_guid(bytes: &[u8; 16], out: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut position = 0;
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out[position] = b'-';
            position += 1;
        }
        out[position] = HEX[usize::from(byte >> 4)];
        out[position + 1] = HEX[usize::from(byte & 0x0f)];
        position += 2;
    }
}

/// Reads rows of one entity back into the row format.
struct ExportReader<'a> {
    meta: &'a EntityMeta,
    layout: Layout,
    sql: String,
}

impl<'a> ExportReader<'a> {
    fn new(meta: &'a EntityMeta) -> Self {
        let layout = Layout::new(meta);
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            layout.columns.join(", "),
            layout.table,
            quote(&meta.primary_id)
        );
        ExportReader { meta, layout, sql }
    }

    fn read(&self, sql_row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        let mut row = Map::new();
        for (index, attribute) in self.meta.attributes.iter().enumerate() {
            let Some(&(slot, companion)) = self.layout.slots.get(&attribute.logical_name) else {
                continue;
            };
            debug_assert_eq!(self.layout.attribute_index[slot], index);
            let stored: SqlValue = sql_row.get(slot)?;
            let value = match (stored, attribute.kind) {
                (SqlValue::Null, _) => continue,
                (SqlValue::Integer(flag), AttributeType::Boolean) => Value::Bool(flag != 0),
                (SqlValue::Integer(number), _) => Value::from(number),
                (SqlValue::Real(number), _) => match serde_json::Number::from_f64(number) {
                    Some(number) => Value::Number(number),
                    None => continue,
                },
                (SqlValue::Text(text), AttributeType::MultiSelectPicklist) => {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                }
                (SqlValue::Text(text), _) => match companion {
                    Some(companion) => match sql_row.get::<_, Option<String>>(companion)? {
                        Some(target) => Value::String(format!("{target}:{text}")),
                        None => Value::String(text),
                    },
                    None => Value::String(text),
                },
                (SqlValue::Blob(_), _) => continue,
            };
            row.insert(attribute.logical_name.clone(), value);
        }
        Ok(row)
    }
}

/// A row set whose parsing refuses keys given twice in one object.
struct StrictRowSet(RowSet);

impl<'de> Deserialize<'de> for StrictRowSet {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowSetVisitor;
        impl<'de> Visitor<'de> for RowSetVisitor {
            type Value = StrictRowSet;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "an object keyed by entity logical name, each an array of rows: \
                     {\"account\": [{...}]}",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictRowSet, A::Error> {
                let mut rows = RowSet::new();
                while let Some(entity) = map.next_key::<String>()? {
                    if rows.contains_key(&entity) {
                        return Err(de::Error::custom(format!(
                            "entity `{entity}` appears twice"
                        )));
                    }
                    let entity_rows: Vec<StrictRow> = map.next_value()?;
                    rows.insert(entity, entity_rows.into_iter().map(|row| row.0).collect());
                }
                Ok(StrictRowSet(rows))
            }
        }
        deserializer.deserialize_map(RowSetVisitor)
    }
}

struct StrictRow(Row);

impl<'de> Deserialize<'de> for StrictRow {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = StrictRow;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a row: an object of column logical names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictRow, A::Error> {
                let mut row = Map::new();
                let mut seen = HashSet::new();
                while let Some(column) = map.next_key::<String>()? {
                    if !seen.insert(column.clone()) {
                        return Err(de::Error::custom(format!(
                            "column `{column}` appears twice in one row"
                        )));
                    }
                    let value: Value = map.next_value()?;
                    row.insert(column, value);
                }
                Ok(StrictRow(row))
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::metadata::Catalogue;

    fn org() -> LocalOrg {
        LocalOrg::in_memory(Catalogue::builtin()).unwrap()
    }

    fn rowset(value: Value) -> RowSet {
        serde_json::from_value(value).unwrap()
    }

    fn count(org: &LocalOrg, entity: &str) -> i64 {
        org.connection()
            .query_row(&format!("SELECT count(*) FROM {entity}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    const ACCOUNT: &str = "a0000000-0000-4000-8000-000000000001";
    const USER: &str = "5e000000-0000-4000-8000-000000000001";

    #[test]
    fn import_then_export_round_trips() {
        let org = org();
        let input = rowset(json!({
            "systemuser": [{"systemuserid": USER, "firstname": "Ada", "lastname": "Lovelace", "fullname": "Ada Lovelace"}],
            "account": [{
                "accountid": ACCOUNT.to_uppercase(),
                "name": "Contoso",
                "revenue": 1250000.5,
                "numberofemployees": 120,
                "industrycode": 7,
                "creditonhold": true,
                "createdon": "2025-03-01",
                "modifiedon": "2025-03-02T10:00:00+02:00",
                "ownerid": USER,
                "address1_city": "Zürich",
            }],
            "task": [{"subject": "Call", "regardingobjectid": format!("account:{ACCOUNT}"), "statuscode": 5}],
        }));
        let report = org.import(&input).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(report.entities["account"], 1);
        let exported = org.export("account").unwrap();
        let row = &exported["account"][0];
        assert_eq!(row["accountid"], json!(ACCOUNT));
        assert_eq!(row["ownerid"], json!(format!("systemuser:{USER}")));
        assert_eq!(row["createdon"], json!("2025-03-01T00:00:00Z"));
        assert_eq!(row["modifiedon"], json!("2025-03-02T08:00:00Z"));
        assert_eq!(row["creditonhold"], json!(true));
        assert_eq!(row["statecode"], json!(0));
        assert_eq!(row["statuscode"], json!(1));
        assert!(!row.contains_key("description"), "nulls are omitted");
        let task = &org.export("task").unwrap()["task"][0];
        assert_eq!(
            task["statecode"],
            json!(1),
            "state follows the given status"
        );
        assert_eq!(
            task["regardingobjectid"],
            json!(format!("account:{ACCOUNT}"))
        );

        // Everything exported imports again, unchanged, into another org.
        let other = self::org();
        let mut all = RowSet::new();
        for entity in ["account", "systemuser", "task"] {
            all.extend(org.export(entity).unwrap());
        }
        other.import(&all).unwrap();
        for entity in ["account", "systemuser", "task"] {
            assert_eq!(other.export(entity).unwrap(), org.export(entity).unwrap());
        }
        let mut text = Vec::new();
        assert_eq!(org.export_to("account", &mut text).unwrap(), 1);
        let reparsed = parse_rowset(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(reparsed, org.export("account").unwrap());
    }

    fn import_error(org: &LocalOrg, value: Value) -> String {
        let error = org.import(&rowset(value)).unwrap_err();
        error.to_string()
    }

    #[test]
    fn bad_values_name_entity_row_and_column_and_write_nothing() {
        let org = org();
        let cases = [
            (
                json!({"acount": [{}]}),
                "acount: unknown entity `acount` (did you mean `account`?)",
            ),
            (
                json!({"account": [{"name": "ok"}, {"revenu": 1}]}),
                "account[1].revenu: account has no column `revenu` (did you mean `revenue`?)",
            ),
            (
                json!({"account": [{}, {}, {}, {"revenue": "lots"}]}),
                "account[3].revenue: expected a number, found \"lots\"",
            ),
            (
                json!({"account": [{"accountid": "not-a-guid"}]}),
                "account[0].accountid: expected a GUID",
            ),
            (
                json!({"account": [{"createdon": "yesterday"}]}),
                "account[0].createdon: expected a date-time",
            ),
            (
                json!({"account": [{"industrycode": 99}]}),
                "account[0].industrycode: 99 is not an option of industrycode",
            ),
            (
                json!({"account": [{"statecode": 1, "statuscode": 1}]}),
                "account[0].statuscode: 1 is not a statuscode of account in state 1",
            ),
            (
                json!({"account": [{"creditonhold": 1}]}),
                "account[0].creditonhold: expected true or false, found 1",
            ),
            (
                json!({"account": [{"numberofemployees": 1.5}]}),
                "account[0].numberofemployees: expected a whole number, found 1.5",
            ),
            (
                json!({"account": [{"name": "x".repeat(161)}]}),
                "account[0].name: 161 characters is longer than the maximum of 160",
            ),
            (
                json!({"account": [{"ownerid": "contact:5e000000-0000-4000-8000-000000000001"}]}),
                "account[0].ownerid: `contact` is not a target of ownerid",
            ),
            (
                json!({"account": [{"ownerid": USER}]}),
                "account[0].ownerid: `5e000000-0000-4000-8000-000000000001` is not a row of `systemuser` or `team`",
            ),
            (
                json!({"account": [{"accountid": ACCOUNT}, {"accountid": ACCOUNT.to_uppercase()}]}),
                "account[1].accountid: duplicate primary key a0000000-0000-4000-8000-000000000001: account[0] has the same id",
            ),
        ];
        for (input, message) in cases {
            let mut with_valid = rowset(input.clone());
            with_valid.insert(
                "contact".to_string(),
                vec![json!({"firstname": "kept?"}).as_object().unwrap().clone()],
            );
            let error = org.import(&with_valid).unwrap_err().to_string();
            assert!(error.starts_with(message), "{input}: got {error}");
            assert_eq!(count(&org, "account"), 0, "{input}");
            assert_eq!(count(&org, "contact"), 0, "{input}");
        }
    }

    #[test]
    fn a_duplicate_of_an_existing_row_is_refused_and_nothing_is_written() {
        let org = org();
        org.import(&rowset(
            json!({"account": [{"accountid": ACCOUNT, "name": "A"}]}),
        ))
        .unwrap();
        let error = import_error(
            &org,
            json!({"account": [{"name": "B"}, {"accountid": ACCOUNT, "name": "again"}]}),
        );
        assert_eq!(
            error,
            format!(
                "account[1].accountid: duplicate primary key: a account with id {ACCOUNT} already exists"
            )
        );
        assert_eq!(count(&org, "account"), 1);
        // Rows without ids get ids derived from their content: the same file twice is refused.
        let file = json!({"account": [{"name": "same"}, {"name": "same"}]});
        org.import(&rowset(file.clone())).unwrap();
        assert_eq!(count(&org, "account"), 3);
        let error = import_error(&org, file);
        assert!(error.contains("was this file imported before?"), "{error}");
        let other = self::org();
        other
            .import(&rowset(
                json!({"account": [{"name": "same"}, {"name": "same"}]}),
            ))
            .unwrap();
        assert_eq!(other.export("account").unwrap()["account"].len(), 2);
        let ids = |org: &LocalOrg| -> Vec<Value> {
            org.export("account").unwrap()["account"]
                .iter()
                .filter(|row| row["name"] == json!("same"))
                .map(|row| row["accountid"].clone())
                .collect()
        };
        assert_eq!(ids(&org), ids(&other), "derived ids are deterministic");
    }

    #[test]
    fn malformed_json_is_located() {
        let error = parse_rowset("{\"account\": [\n  {\"name\": \"a\",}\n]}").unwrap_err();
        assert_eq!(error.position, Some((2, 16)), "{error}");
        assert!(
            error.to_string().starts_with("line 2, column 16: "),
            "{error}"
        );
        let error = parse_rowset("[1, 2]").unwrap_err();
        assert!(
            error.to_string().contains("an object keyed by entity"),
            "{error}"
        );
        let error =
            parse_rowset("{\"account\": [{\"name\": \"a\", \"name\": \"b\"}]}").unwrap_err();
        assert!(
            error.to_string().contains("column `name` appears twice"),
            "{error}"
        );
        assert!(error.position.is_some());
        let error = parse_rowset("{\"account\": {}}").unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
        let org = org();
        assert!(org.import_json("{").is_err());
        assert_eq!(count(&org, "account"), 0);
    }

    #[test]
    fn datetimes_are_normalized_to_utc_seconds() {
        assert_eq!(
            normalize_datetime("2026-03-15T10:00:00.789-05:00").unwrap(),
            "2026-03-15T15:00:00Z"
        );
        assert_eq!(
            normalize_datetime("2026-03-15").unwrap(),
            "2026-03-15T00:00:00Z"
        );
        assert!(normalize_datetime("2026-03-15T10:00:00").is_err());
        assert!(normalize_datetime("0001-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn polymorphic_bare_guids_resolve_against_the_file() {
        let org = org();
        org.import(&rowset(json!({
            "team": [{"teamid": "5e000000-0000-4000-8000-000000000101", "name": "West"}],
            "account": [{"name": "A", "ownerid": "5E000000-0000-4000-8000-000000000101"}],
        })))
        .unwrap();
        let row = &org.export("account").unwrap()["account"][0];
        assert_eq!(
            row["ownerid"],
            json!("team:5e000000-0000-4000-8000-000000000101")
        );
    }
}
