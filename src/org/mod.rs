//! Orgs: the `Org` trait (DESIGN 6.1) through which the engine reads and writes a
//! Dataverse-like store, the row format of DESIGN 5.2, and the errors an org reports.
//! Implementations: `local` (the embedded SQLite org); the Dataverse Web API comes later.

pub mod dataverse;
pub mod local;
pub mod odata;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::metadata::Catalogue;

/// One row in the format of DESIGN 5.2: root columns by logical name, link-entity columns as
/// `alias.column`, aliased columns and aggregates by alias; null values omitted.
pub type Row = Map<String, Value>;

/// Which page of a query to read. Fields that are `Some` override the `fetch` element's own
/// `page`, `count` and `paging-cookie` attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: Option<u32>,
    /// Rows per page (at most 5,000).
    pub count: Option<u32>,
    /// The cookie returned with the previous page.
    pub paging_cookie: Option<String>,
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Row>,
    /// More rows exist after this page (`@Microsoft.Dynamics.CRM.morerecords`).
    pub more_records: bool,
    /// Pass it back (with the next page number) to read the next page by keyset.
    pub paging_cookie: Option<String>,
    /// With `returntotalrecordcount`: the total, capped at 5,000.
    pub total_record_count: Option<i64>,
    /// The total exceeded the 5,000 cap.
    pub total_record_count_limit_exceeded: bool,
}

/// An error of a whole request, worded and numbered as Dataverse words and numbers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OrgError {
    /// Dataverse error name, e.g. `QueryBuilderNoAttribute`, `InvalidXml`.
    pub code: &'static str,
    /// Dataverse error number as a signed 32-bit value, e.g. -2147217149 (0x80041103).
    pub number: i64,
    pub message: String,
    /// Whether sending the same request again may succeed (throttling, timeouts, locks).
    pub retryable: bool,
    /// How long the org asked us to wait before the next request (`Retry-After` of a 429 or
    /// 503); the engine waits exactly this long instead of its own backoff.
    pub retry_after: Option<Duration>,
}

impl OrgError {
    pub fn new(code: &'static str, number: i64, message: impl Into<String>) -> Self {
        OrgError {
            code,
            number,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// The same error, retryable after the wait the org asked for.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retryable = true;
        self.retry_after = Some(wait);
        self
    }
}

/// The owner an `assign` gives a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// `systemuser` or `team`.
    pub entity: String,
    /// Lower-case GUID.
    pub id: String,
}

/// One write of a batch. Ids are lower-case GUIDs; values are in the row format.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Update {
        entity: String,
        id: String,
        values: Row,
    },
    Assign {
        entity: String,
        id: String,
        owner: OwnerRef,
    },
    SetState {
        entity: String,
        id: String,
        statecode: i32,
        statuscode: i32,
    },
    /// Creates a row with the given id (the engine derives it deterministically).
    Create {
        entity: String,
        id: String,
        values: Row,
    },
    Delete {
        entity: String,
        id: String,
    },
}

impl Write {
    pub fn entity(&self) -> &str {
        match self {
            Write::Update { entity, .. }
            | Write::Assign { entity, .. }
            | Write::SetState { entity, .. }
            | Write::Create { entity, .. }
            | Write::Delete { entity, .. } => entity,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Write::Update { id, .. }
            | Write::Assign { id, .. }
            | Write::SetState { id, .. }
            | Write::Create { id, .. }
            | Write::Delete { id, .. } => id,
        }
    }
}

/// One custom API call (a workflow's `call` action for one record).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// The API's unique name, e.g. `sample_RecalculateCredit`.
    pub api: String,
    /// Request parameters by name; entity references as `"<entity>:<id>"`.
    pub params: Row,
    /// The same for every attempt and every replay of this call (operation, record, action), so
    /// a receiver that remembers keys applies a repeated call once.
    pub idempotency_key: String,
    /// Run it as a background operation where the org distinguishes (Dataverse); the call
    /// returns once that operation ended.
    pub background: bool,
}

/// Why one record of a batch failed; the other records of the batch are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    /// Dataverse error name, e.g. `ObjectDoesNotExist`, `DuplicateRecord`, `InvalidArgument`.
    pub code: &'static str,
    pub number: i64,
    pub message: String,
}

/// The boxed future every `Org` method returns, so `Org` can be used as `dyn Org`.
pub type OrgFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, OrgError>> + Send + 'a>>;

/// Everything the engine needs from a Dataverse-like store.
pub trait Org: Send + Sync {
    /// Tables and columns of this org.
    fn catalogue(&self) -> &Catalogue;

    /// One page of a FetchXML query.
    fn query_page<'a>(&'a self, fetchxml: &'a str, request: &'a PageRequest)
    -> OrgFuture<'a, Page>;

    /// Applies a batch of writes; one result per write, in order. A record that fails (missing,
    /// invalid value) is that record's error, not the batch's.
    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write],
    ) -> OrgFuture<'a, Vec<Result<(), RecordError>>>;

    /// Calls custom APIs; one result (the API's output parameters) per call, in order. A call
    /// that fails (unknown API, bad parameter, missing target) is that call's error.
    fn call_batch<'a>(
        &'a self,
        calls: &'a [ApiCall],
    ) -> OrgFuture<'a, Vec<Result<Row, RecordError>>>;
    /// This org for a workflow with `batch.bypass_plugins: true`: Dataverse then sends the
    /// `MSCRM.BypassCustomPluginExecution` header with its writes. `None` (the default) means
    /// there is nothing to bypass (the local org runs no plug-ins): use the org as it is.
    fn with_plugins_bypassed(&self) -> Option<std::sync::Arc<dyn Org>> {
        None
    }
}
