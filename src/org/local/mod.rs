//! The local org: an embedded, Dataverse-compatible store in one SQLite file, with a FetchXML
//! engine that means what Dataverse means. It is the default connection of a fresh clone.
//!
//! Storage conventions, shared by every file of this module:
//! - one table per entity, named by its logical name; one column per attribute, named by its
//!   logical name (always quoted with [`quote`]);
//! - types ([`sql_type`]): text columns are `TEXT COLLATE ff_ci` ([`COLLATION`]: Unicode
//!   case- and accent-insensitive, as Dataverse's English collation); whole numbers, choices,
//!   states and statuses `INTEGER`; money, decimal and double `REAL`; booleans `INTEGER` 0/1;
//!   date-times `TEXT` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, so text order is time order); GUIDs and
//!   lookups `TEXT`, lower-case without braces; multi-select choices `TEXT` as a JSON array;
//! - a lookup that can reference several tables (owner, customer, regarding) keeps the target
//!   table's logical name in a companion column [`target_column`] (`ownerid@target`);
//! - the primary key is `TEXT PRIMARY KEY`; lookups, `statecode` and the primary name are indexed;
//! - the catalogue (built-in plus custom tables) is stored in the file, so an org opened later
//!   knows its own tables.

mod api;
mod collation;
mod demo;
mod query;
mod rows;
mod schema;
mod sql;
mod write;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use demo::{DemoReport, DemoSize};
pub use rows::{ImportError, ImportReport, RowSet};

use crate::metadata::{AttributeMeta, AttributeType, Catalogue};
use crate::org::{ApiCall, Org, OrgError, OrgFuture, Page, PageRequest, RecordError, Row, Write};

pub use api::{CREDIT_HOLD_BELOW, LOCAL_APIS, LoggedCall};

/// Name of the collation registered on every connection (see [`collation`]).
pub const COLLATION: &str = "ff_ci";

/// Where relative-date operators (`today`, `last-x-days`, ...) get "now" from.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// An embedded org in a SQLite file (or in memory, for tests).
pub struct LocalOrg {
    connection: Mutex<Connection>,
    catalogue: Catalogue,
    /// The systemuser that `eq-userid`, `eq-businessid`, `eq-userteams` refer to.
    caller: Option<String>,
    clock: Clock,
}

impl std::fmt::Debug for LocalOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOrg")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl LocalOrg {
    /// Creates a new, empty org file with the given catalogue (fails if the file exists).
    pub fn create(path: &Path, catalogue: Catalogue) -> Result<LocalOrg, OrgError> {
        if path.exists() {
            return Err(OrgError::new(
                "OrgExists",
                -1,
                format!(
                    "{} already exists; remove it or choose another --org path",
                    path.display()
                ),
            ));
        }
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|error| storage(format!("cannot create {}: {error}", parent.display())))?;
        }
        let connection = Connection::open(path).map_err(sqlite)?;
        LocalOrg::initialize(connection, catalogue)
    }

    /// Opens an existing org file; its catalogue is read from the file.
    pub fn open(path: &Path) -> Result<LocalOrg, OrgError> {
        if !path.is_file() {
            return Err(OrgError::new(
                "OrgNotFound",
                -1,
                format!(
                    "{} does not exist; create it with `fetchflow org init`",
                    path.display()
                ),
            ));
        }
        let connection = Connection::open(path).map_err(sqlite)?;
        collation::register(&connection).map_err(sqlite)?;
        schema::configure(&connection).map_err(sqlite)?;
        let catalogue = schema::load_catalogue(&connection)?;
        Ok(LocalOrg::from_parts(connection, catalogue))
    }

    /// An org in memory, for tests and rehearsals that must leave nothing behind.
    pub fn in_memory(catalogue: Catalogue) -> Result<LocalOrg, OrgError> {
        let connection = Connection::open_in_memory().map_err(sqlite)?;
        LocalOrg::initialize(connection, catalogue)
    }

    fn initialize(connection: Connection, catalogue: Catalogue) -> Result<LocalOrg, OrgError> {
        collation::register(&connection).map_err(sqlite)?;
        schema::configure(&connection).map_err(sqlite)?;
        schema::create(&connection, &catalogue)?;
        Ok(LocalOrg::from_parts(connection, catalogue))
    }

    fn from_parts(connection: Connection, catalogue: Catalogue) -> LocalOrg {
        LocalOrg {
            connection: Mutex::new(connection),
            catalogue,
            caller: None,
            clock: Arc::new(Utc::now),
        }
    }

    /// Sets the calling user (a systemuser id) for the user and business-unit operators.
    #[must_use]
    pub fn with_caller(mut self, systemuser_id: Option<String>) -> Self {
        self.caller = systemuser_id.map(|id| id.to_ascii_lowercase());
        self
    }

    /// Replaces the clock relative-date operators use (tests fix it).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Runs a FetchXML query and returns one page.
    pub fn query(&self, fetchxml: &str, request: &PageRequest) -> Result<Page, OrgError> {
        query::run(self, fetchxml, request)
    }

    /// Applies writes in one transaction, with a result per write.
    pub fn write(&self, writes: &[Write]) -> Result<Vec<Result<(), RecordError>>, OrgError> {
        write::apply(self, writes)
    }

    /// Calls the org's custom APIs (see `api`), in one transaction, with a result per call.
    pub fn call(&self, calls: &[ApiCall]) -> Result<Vec<Result<Row, RecordError>>, OrgError> {
        api::call_batch(self, calls)
    }

    /// Every custom API call made so far, by idempotency key.
    pub fn logged_calls(&self) -> Result<Vec<LoggedCall>, OrgError> {
        api::logged_calls(self)
    }

    /// Imports rows in the row format (DESIGN 5.2): every value is checked, all or nothing.
    pub fn import(&self, rows: &RowSet) -> Result<ImportReport, ImportError> {
        rows::import(self, rows)
    }

    /// All rows of an entity in the row format, ordered by primary key.
    pub fn export(&self, entity: &str) -> Result<RowSet, OrgError> {
        rows::export(self, entity)
    }

    /// Fills the org with deterministic demo data.
    pub fn populate_demo(&self, size: DemoSize) -> Result<DemoReport, OrgError> {
        demo::populate(self, size)
    }

    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Org for LocalOrg {
    fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn query_page<'a>(
        &'a self,
        fetchxml: &'a str,
        request: &'a PageRequest,
    ) -> OrgFuture<'a, Page> {
        Box::pin(async move { self.query(fetchxml, request) })
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>> {
        Box::pin(async move { self.write(writes) })
    }

    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>> {
        Box::pin(async move { self.call(calls) })
    }
}

/// Registers the `ff_ci` collation and the `ff_like`/`ff_fold` functions on a connection, so
/// that tools opening an org file with SQLite directly can read its tables.
pub fn register_functions(connection: &Connection) -> rusqlite::Result<()> {
    collation::register(connection)
}

/// `"name"` with embedded quotes doubled: every identifier in generated SQL goes through this.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The SQLite column type of an attribute type (see the module doc).
pub(crate) fn sql_type(kind: AttributeType) -> &'static str {
    match kind {
        AttributeType::String | AttributeType::Memo => "TEXT COLLATE ff_ci",
        AttributeType::Integer
        | AttributeType::BigInt
        | AttributeType::Picklist
        | AttributeType::State
        | AttributeType::Status
        | AttributeType::Boolean => "INTEGER",
        AttributeType::Decimal | AttributeType::Double | AttributeType::Money => "REAL",
        AttributeType::DateTime
        | AttributeType::Uniqueidentifier
        | AttributeType::Lookup
        | AttributeType::Owner
        | AttributeType::Customer
        | AttributeType::MultiSelectPicklist => "TEXT",
    }
}

/// Whether a lookup can reference more than one table and so stores its target's name.
pub(crate) fn is_polymorphic(attribute: &AttributeMeta) -> bool {
    attribute.kind.is_lookup() && attribute.targets.len() > 1
}

/// The companion column holding the target table of a polymorphic lookup (unquoted).
pub(crate) fn target_column(column: &str) -> String {
    format!("{column}@target")
}

pub(crate) fn sqlite(error: rusqlite::Error) -> OrgError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    OrgError {
        retryable,
        ..storage(format!("local org storage error: {error}"))
    }
}

pub(crate) fn storage(message: String) -> OrgError {
    OrgError::new("StorageError", -2147220970, message)
}
