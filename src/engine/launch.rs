//! Starting a run: the operation a trigger, the CLI or the API creates for a workflow, with the
//! workflow's `overlap` policy applied for triggers, and the count a sync run checks before it
//! writes anything. Shared by `run`, the scheduler, webhooks and the HTTP API.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::compile::{Mode, Overlap, Workflow};
use crate::org::{Org, OrgError, PageRequest};
use crate::store::{
    NewOperation, Operation, OperationFilter, OperationStatus, StateStore, StoreError, Trigger,
    WorkflowVersion,
};

/// What to start.
#[derive(Debug, Clone)]
pub struct LaunchRequest<'a> {
    pub workflow: &'a Workflow,
    /// The exact text `workflow` was compiled from (`ActiveWorkflow::source`); stored with the
    /// operation's version so that it runs with this version on any node, after any edit.
    pub source: &'a str,
    /// Resolved run vars (defaults merged with overrides, typed).
    pub vars: Vec<(String, Value)>,
    pub trigger: Trigger,
    pub mode: Mode,
    /// The commit of the workflow file when it sits unmodified in a git work tree.
    pub git_commit: Option<String>,
    /// Creation time, and the run's fixed `now`.
    pub now: DateTime<Utc>,
    /// Apply the workflow's `overlap` policy (cron and webhook triggers). Manual and API runs
    /// always queue: the store runs one operation of a workflow at a time, in creation order.
    pub apply_overlap: bool,
}

/// What a launch did.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A new `waiting` operation.
    Created(Operation),
    /// `overlap: skip` and this operation of the workflow is active: nothing was created.
    Skipped { active: String },
    /// `overlap: replace`: the active operations were asked to cancel, and a new one waits
    /// for them to stop.
    Replaced {
        operation: Operation,
        canceled: Vec<String>,
    },
}

impl Launch {
    /// The created operation, unless the launch was skipped.
    pub fn operation(&self) -> Option<&Operation> {
        match self {
            Launch::Created(operation) | Launch::Replaced { operation, .. } => Some(operation),
            Launch::Skipped { .. } => None,
        }
    }
}

/// Creates the operation for `request`, applying `overlap` when asked. The workflow's version
/// is stored first (see [`save_version`]), so no operation ever exists without its source. A
/// cron fire (`Trigger::Cron`) claims its instant atomically with its operation, or, when
/// skipped, on its own; an instant claimed before is [`StoreError::FireClaimed`].
pub fn launch(store: &dyn StateStore, request: &LaunchRequest<'_>) -> Result<Launch, StoreError> {
    let workflow = request.workflow;
    save_version(store, workflow, request.source, request.now)?;
    let mut canceled = Vec::new();
    if request.apply_overlap && workflow.overlap != Overlap::Queue {
        let active = active_operations(store, &workflow.name)?;
        match workflow.overlap {
            Overlap::Skip => {
                if let Some(operation) = active.first() {
                    // A skipped fire is still a handled fire: claimed, so another node skips it
                    // too and start-up does not run it as missed.
                    if let Trigger::Cron { instant } = request.trigger
                        && !store.claim_fire(&workflow.name, instant, request.now)?
                    {
                        return Err(StoreError::FireClaimed {
                            workflow: workflow.name.clone(),
                            instant,
                        });
                    }
                    return Ok(Launch::Skipped {
                        active: operation.id.clone(),
                    });
                }
            }
            Overlap::Replace => {
                for operation in active {
                    match store.request_cancel(&operation.id, request.now) {
                        Ok(_) | Err(StoreError::AlreadyFinished { .. }) => {
                            canceled.push(operation.id);
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            Overlap::Queue => {}
        }
    }
    let new_operation = NewOperation {
        id: uuid::Uuid::new_v4().to_string(),
        workflow: workflow.name.clone(),
        workflow_version: workflow.version.clone(),
        git_commit: request.git_commit.clone(),
        connection: workflow.connection.clone(),
        mode: request.mode,
        trigger: request.trigger.clone(),
        vars: request.vars.iter().cloned().collect(),
        now: request.now,
        retry_of: None,
        record_filter: None,
    };
    let operation = store.create_operation(&new_operation, request.now)?;
    Ok(if canceled.is_empty() {
        Launch::Created(operation)
    } else {
        Launch::Replaced {
            operation,
            canceled,
        }
    })
}

/// Stores the source of `workflow`'s version (idempotent), for whoever executes one of its
/// operations later: refused when `source` is not the text `workflow` was compiled from.
pub fn save_version(
    store: &dyn StateStore,
    workflow: &Workflow,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.save_workflow_version(&WorkflowVersion {
        version: workflow.version.clone(),
        name: workflow.name.clone(),
        path: workflow.file.clone(),
        source: source.to_string(),
        first_seen: now,
    })
}

/// The workflow's operations that are waiting, in progress or canceling, oldest first.
pub fn active_operations(
    store: &dyn StateStore,
    workflow: &str,
) -> Result<Vec<Operation>, StoreError> {
    let mut active = Vec::new();
    for status in [
        OperationStatus::InProgress,
        OperationStatus::Canceling,
        OperationStatus::Waiting,
    ] {
        let mut cursor = None;
        loop {
            let page = store.list(&OperationFilter {
                status: Some(status),
                workflow: Some(workflow.to_string()),
                limit: crate::store::MAX_PAGE_SIZE,
                cursor,
            })?;
            active.extend(page.operations);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    active.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(active)
}

/// Counts a rendered selection by paging cookie, stopping as soon as it exceeds `limit`: what
/// a sync run checks before it writes anything.
pub async fn count_selection(org: &dyn Org, fetchxml: &str, limit: u64) -> Result<u64, OrgError> {
    let has_top = crate::fetchxml::parse(fetchxml)
        .0
        .is_some_and(|query| query.top.is_some());
    let mut request = if has_top {
        // `top` cannot be combined with paging: one request returns at most `top` rows.
        PageRequest::default()
    } else {
        PageRequest {
            page: Some(1),
            count: Some(crate::engine::MAX_PAGE_SIZE),
            paging_cookie: None,
        }
    };
    let mut count = 0u64;
    loop {
        let page = org.query_page(fetchxml, &request).await?;
        count += page.rows.len() as u64;
        if has_top || !page.more_records || count > limit {
            return Ok(count);
        }
        request = PageRequest {
            page: request.page.map(|page| page + 1),
            count: Some(crate::engine::MAX_PAGE_SIZE),
            paging_cookie: page.paging_cookie,
        };
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::compile::{CompileContext, compile_source};
    use crate::metadata::Catalogue;
    use crate::source::SourceFile;
    use crate::store::SqliteStateStore;

    const SOURCE: &str = "name: stamp\nselect:\n  fetchxml: |\n    <fetch>\n      \
                          <entity name=\"account\">\n        <attribute name=\"name\"/>\n      \
                          </entity>\n    </fetch>\nactions:\n  - update:\n      set:\n        \
                          description: \"stamped\"\n";

    fn compiled(source: &str) -> Workflow {
        let catalogue = Catalogue::builtin();
        let context = CompileContext {
            catalogue: &catalogue,
            connections: None,
        };
        let outcome = compile_source(SourceFile::new("workflows/stamp.yaml", source), &context);
        outcome
            .workflow
            .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics))
    }

    fn request<'a>(workflow: &'a Workflow, source: &'a str) -> LaunchRequest<'a> {
        LaunchRequest {
            workflow,
            source,
            vars: Vec::new(),
            trigger: Trigger::Api,
            mode: Mode::Async,
            git_commit: None,
            now: Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
            apply_overlap: false,
        }
    }

    #[test]
    fn a_launch_stores_the_source_of_its_version() {
        let store = SqliteStateStore::in_memory().unwrap();
        let workflow = compiled(SOURCE);
        let launched = launch(&store, &request(&workflow, SOURCE)).unwrap();
        let operation = launched.operation().unwrap();
        let stored = store
            .workflow_version(&operation.workflow_version)
            .unwrap()
            .expect("the version is stored with the operation");
        assert_eq!(stored.source, SOURCE);
        assert_eq!(stored.name, "stamp");
        assert_eq!(stored.path, workflow.file);
        // A second launch of the same version keeps the one row.
        launch(&store, &request(&workflow, SOURCE)).unwrap();
        assert_eq!(
            store.workflow_version(&workflow.version).unwrap(),
            Some(stored)
        );
    }

    #[test]
    fn a_launch_with_a_source_that_is_not_its_version_creates_nothing() {
        let store = SqliteStateStore::in_memory().unwrap();
        let workflow = compiled(SOURCE);
        let edited = SOURCE.replace("stamped", "edited");
        let error = launch(&store, &request(&workflow, &edited)).unwrap_err();
        assert!(
            matches!(error, StoreError::WorkflowVersionMismatch { .. }),
            "{error}"
        );
        let page = store.list(&OperationFilter::default()).unwrap();
        assert!(page.operations.is_empty(), "{:?}", page.operations);
    }
}

/// Why a retry of failed records cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RetryRefused {
    #[error("operation {id} is {}; retry it once it has finished", status.display_name())]
    NotFinished { id: String, status: OperationStatus },
    #[error("nothing to retry: operation {id} has no failed records")]
    NothingToRetry { id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a `waiting` operation that runs `original`'s workflow version with its vars over
/// its failed records only (`ops retry`, the API and the dashboard's "Retry failed").
pub fn launch_retry(
    store: &dyn StateStore,
    original: &Operation,
    now: DateTime<Utc>,
) -> Result<Operation, RetryRefused> {
    if !original.status.is_final() {
        return Err(RetryRefused::NotFinished {
            id: original.id.clone(),
            status: original.status,
        });
    }
    let record_ids = store.failed_record_ids(&original.id)?;
    if record_ids.is_empty() {
        return Err(RetryRefused::NothingToRetry {
            id: original.id.clone(),
        });
    }
    let retry = NewOperation {
        id: uuid::Uuid::new_v4().to_string(),
        workflow: original.workflow.clone(),
        workflow_version: original.workflow_version.clone(),
        git_commit: original.git_commit.clone(),
        connection: original.connection.clone(),
        mode: Mode::Async,
        trigger: Trigger::Retry {
            of: original.id.clone(),
        },
        vars: original.vars.clone(),
        now,
        retry_of: Some(original.id.clone()),
        record_filter: Some(record_ids),
    };
    Ok(store.create_operation(&retry, now)?)
}
