//! `SqliteStateStore`: the state store over one SQLite file (WAL, 5 s busy timeout, foreign
//! keys, versioned migrations), safe to share between threads and between processes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::store::codec::{
    DELIVERY_COLUMNS, FAILURE_COLUMNS, OPERATION_COLUMNS, attempt_from_row, count_value,
    delivery_from_row, failure_from_row, later, mode_text, operation_from_row, parse_status,
    parse_time, time_text, to_json,
};
use crate::store::migrations;
use crate::store::{
    AttemptOutcome, Checkpoint, CheckpointSaved, Counts, DEFAULT_PAGE_SIZE, Delivery, DeliveryLog,
    DeliveryStatus, FailurePage, MAX_PAGE_SIZE, NewDelivery, NewOperation, Operation,
    OperationError, OperationFilter, OperationPage, OperationStatus, RecordFailure, StateStore,
    StoreError, Trigger, WorkflowVersion,
};

/// How long a connection waits for another one's write lock before giving up with a
/// retryable error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The state store in one SQLite file (or in memory, for tests).
pub struct SqliteStateStore {
    connection: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStateStore {
    /// Opens the store at `path`, creating the file and its parent directories if needed and
    /// bringing its schema up to date. Refuses a store written by a newer fetchflow.
    pub fn open(path: &Path) -> Result<SqliteStateStore, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDirectory {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        create_private(path).map_err(|source| StoreError::CreateFile {
            path: path.to_path_buf(),
            source,
        })?;
        let connection = Connection::open(path)?;
        SqliteStateStore::initialize(connection, Some(path.to_path_buf()))
    }

    /// A store in memory, gone when dropped.
    pub fn in_memory() -> Result<SqliteStateStore, StoreError> {
        SqliteStateStore::initialize(Connection::open_in_memory()?, None)
    }

    /// The file behind the store (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn initialize(
        mut connection: Connection,
        path: Option<PathBuf>,
    ) -> Result<SqliteStateStore, StoreError> {
        configure(&connection, path.is_some())
            .map_err(|error| migrations::not_a_database(&connection, error))?;
        migrations::migrate(&mut connection)?;
        Ok(SqliteStateStore {
            connection: Mutex::new(connection),
            path,
        })
    }

    pub(super) fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (an open transaction rolls
        // back on drop), so a poisoned lock is still safe to use.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` in an immediate transaction: the write lock is taken at the start, so a
    /// read-then-write inside never races another connection. Rolled back on error.
    fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = work(&transaction)?;
        transaction.commit()?;
        Ok(result)
    }
}

/// WAL for files (readers never block the writer), crash-safe syncing, the busy timeout and
/// foreign keys.
fn configure(connection: &Connection, file: bool) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    if file {
        let _mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    }
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Creates an empty store file readable by its owner only (the outbox holds rendered callbacks,
/// secrets included); SQLite gives its `-wal` and `-shm` files the same mode. An existing file
/// is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

fn find_operation(connection: &Connection, id: &str) -> Result<Option<Operation>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    rows.next()?.map(operation_from_row).transpose()
}

fn load_operation(connection: &Connection, id: &str) -> Result<Operation, StoreError> {
    find_operation(connection, id)?.ok_or_else(|| StoreError::OperationNotFound { id: id.into() })
}

fn query_operations(
    connection: &Connection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<Operation>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut operations = Vec::new();
    while let Some(row) = rows.next()? {
        operations.push(operation_from_row(row)?);
    }
    Ok(operations)
}

/// The columns that decide who may write for an operation, read without decoding the row.
struct LeaseState {
    status: OperationStatus,
    worker: Option<String>,
    cancel_requested: bool,
}

fn lease_state(connection: &Connection, id: &str) -> Result<LeaseState, StoreError> {
    let row: Option<(String, Option<String>, bool)> = connection
        .prepare_cached(
            "SELECT status, lease_worker, cancel_requested FROM operations WHERE id = ?1",
        )?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let (status, worker, cancel_requested) =
        row.ok_or_else(|| StoreError::OperationNotFound { id: id.into() })?;
    Ok(LeaseState {
        status: parse_status(&format!("operations.status of {id}"), &status)?,
        worker,
        cancel_requested,
    })
}

/// Checks that `worker` may still write for the operation: it is running and its lease is
/// `worker`'s.
fn ensure_holder(id: &str, state: &LeaseState, worker: &str) -> Result<(), StoreError> {
    if state.status.is_final() {
        return Err(StoreError::AlreadyFinished {
            id: id.into(),
            status: state.status,
        });
    }
    if state.status != OperationStatus::Waiting && state.worker.as_deref() == Some(worker) {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            id: id.into(),
            worker: worker.into(),
        })
    }
}

/// The running (`in_progress` or `canceling`) operation of a workflow, if any.
fn active_operation(connection: &Connection, workflow: &str) -> Result<Option<String>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT id FROM operations WHERE workflow = ?1 \
             AND status IN ('in_progress', 'canceling') LIMIT 1",
        )?
        .query_row([workflow], |row| row.get(0))
        .optional()?)
}

/// Gives `worker` the lease on a claimable operation; a waiting one starts.
fn take(
    transaction: &Transaction<'_>,
    operation: &Operation,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Operation, StoreError> {
    let status = match operation.status {
        OperationStatus::Waiting => OperationStatus::InProgress,
        status => status,
    };
    transaction
        .prepare_cached(
            "UPDATE operations SET status = ?2, started_at = coalesce(started_at, ?3), \
             lease_worker = ?4, lease_expires_at = ?5, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![
            operation.id,
            status.as_str(),
            time_text(now),
            worker,
            time_text(later(now, lease)),
        ])?;
    load_operation(transaction, &operation.id)
}

fn limit_of(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE_SIZE,
        limit => limit.min(MAX_PAGE_SIZE),
    }
}

fn invalid_cursor(cursor: &str) -> StoreError {
    StoreError::InvalidCursor {
        cursor: cursor.into(),
    }
}

fn find_delivery(connection: &Connection, id: &str) -> Result<Delivery, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    rows.next()?
        .map(delivery_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::DeliveryNotFound { id: id.into() })
}

fn select_due(
    connection: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries \
         WHERE status = 'pending' AND next_attempt_at <= ?1 \
         ORDER BY next_attempt_at, id LIMIT ?2"
    ))?;
    let mut rows = statement.query(params![time_text(now), limit_of(limit)])?;
    let mut deliveries = Vec::new();
    while let Some(row) = rows.next()? {
        deliveries.push(delivery_from_row(row)?);
    }
    Ok(deliveries)
}

/// Stores a rendered callback in the outbox, due at once.
fn insert_delivery(
    transaction: &Transaction<'_>,
    operation_id: &str,
    delivery: &NewDelivery,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached(
            "INSERT INTO deliveries (id, operation_id, url, method, headers, body, signature, \
             secret_parts, attempts, next_attempt_at, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, 'pending', ?9)",
        )?
        .execute(params![
            delivery.id,
            operation_id,
            delivery.url,
            delivery.method,
            to_json("delivery headers", &delivery.headers)?,
            delivery.body,
            delivery.signature,
            to_json("delivery secret parts", &delivery.secret_parts)?,
            time_text(now),
        ])?;
    Ok(())
}

fn log_attempt(
    transaction: &Transaction<'_>,
    delivery: &Delivery,
    outcome: &AttemptOutcome,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let attempt = delivery.attempts.saturating_add(1);
    let (status_code, error) = match outcome {
        AttemptOutcome::Status(code) => (Some(i64::from(*code)), None),
        AttemptOutcome::Error(message) => (None, Some(message.as_str())),
    };
    transaction
        .prepare_cached(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, error) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            delivery.id,
            attempt,
            time_text(now),
            status_code,
            error
        ])?;
    Ok(attempt)
}

impl StateStore for SqliteStateStore {
    fn create_operation(
        &self,
        operation: &NewOperation,
        now: DateTime<Utc>,
    ) -> Result<Operation, StoreError> {
        let vars = to_json("operation vars", &operation.vars)?;
        let record_filter = operation
            .record_filter
            .as_ref()
            .map(|ids| to_json("operation record filter", ids))
            .transpose()?;
        self.write(|transaction| {
            if find_operation(transaction, &operation.id)?.is_some() {
                return Err(StoreError::OperationExists {
                    id: operation.id.clone(),
                });
            }
            if let Some(retry_of) = &operation.retry_of
                && find_operation(transaction, retry_of)?.is_none()
            {
                return Err(StoreError::OperationNotFound {
                    id: retry_of.clone(),
                });
            }
            // A cron operation claims its fire instant with it: a crash can never leave an
            // instant claimed without its operation (a lost fire), nor create two.
            if let Trigger::Cron { instant } = operation.trigger {
                let claimed = transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO fire_claims (workflow, instant, claimed_at) \
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        operation.workflow,
                        time_text(instant),
                        time_text(now)
                    ])?;
                if claimed == 0 {
                    return Err(StoreError::FireClaimed {
                        workflow: operation.workflow.clone(),
                        instant,
                    });
                }
            }
            transaction
                .prepare_cached(
                    "INSERT INTO operations (id, workflow, workflow_version, git_commit, \
                     connection, mode, trigger, vars, status, created_at, now, retry_of, \
                     record_filter, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'waiting', ?9, ?10, ?11, ?12, ?9)",
                )?
                .execute(params![
                    operation.id,
                    operation.workflow,
                    operation.workflow_version,
                    operation.git_commit,
                    operation.connection,
                    mode_text(operation.mode),
                    operation.trigger.to_string(),
                    vars,
                    time_text(now),
                    time_text(operation.now),
                    operation.retry_of,
                    record_filter,
                ])?;
            load_operation(transaction, &operation.id)
        })
    }

    fn get(&self, id: &str) -> Result<Operation, StoreError> {
        load_operation(&self.connection(), id)
    }

    fn list(&self, filter: &OperationFilter) -> Result<OperationPage, StoreError> {
        let limit = limit_of(filter.limit);
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        if let Some(status) = filter.status {
            values.push(Value::Text(status.as_str().into()));
            conditions.push(format!("status = ?{}", values.len()));
        }
        if let Some(workflow) = &filter.workflow {
            values.push(Value::Text(workflow.clone()));
            conditions.push(format!("workflow = ?{}", values.len()));
        }
        if let Some(cursor) = &filter.cursor {
            let (created_at, id) = cursor
                .split_once(',')
                .filter(|(created_at, id)| {
                    !id.is_empty() && parse_time("cursor", created_at).is_ok()
                })
                .ok_or_else(|| invalid_cursor(cursor))?;
            values.push(Value::Text(created_at.into()));
            values.push(Value::Text(id.into()));
            conditions.push(format!(
                "(created_at, id) < (?{}, ?{})",
                values.len() - 1,
                values.len()
            ));
        }
        values.push(Value::Integer(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {OPERATION_COLUMNS} FROM operations {} ORDER BY created_at DESC, id DESC \
             LIMIT ?{}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            values.len()
        );
        let mut operations = query_operations(&self.connection(), &sql, values)?;
        let next_cursor = if operations.len() > limit as usize {
            operations.truncate(limit as usize);
            operations
                .last()
                .map(|last| format!("{},{}", time_text(last.created_at), last.id))
        } else {
            None
        };
        Ok(OperationPage {
            operations,
            next_cursor,
        })
    }

    fn claim_next(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Operation>, StoreError> {
        self.write(|transaction| {
            let expired = query_operations(
                transaction,
                &format!(
                    "SELECT {OPERATION_COLUMNS} FROM operations \
                     WHERE status IN ('in_progress', 'canceling') AND mode = 'async' \
                     AND lease_expires_at <= ?1 \
                     ORDER BY lease_expires_at, created_at, id LIMIT 1"
                ),
                vec![Value::Text(time_text(now))],
            )?;
            let candidate = match expired.into_iter().next() {
                Some(operation) => Some(operation),
                None => query_operations(
                    transaction,
                    &format!(
                        "SELECT {OPERATION_COLUMNS} FROM operations AS waiting \
                         WHERE status = 'waiting' AND mode = 'async' AND NOT EXISTS ( \
                             SELECT 1 FROM operations AS running \
                             WHERE running.workflow = waiting.workflow \
                             AND running.status IN ('in_progress', 'canceling')) \
                         ORDER BY created_at, id LIMIT 1"
                    ),
                    Vec::new(),
                )?
                .into_iter()
                .next(),
            };
            candidate
                .map(|operation| take(transaction, &operation, worker, now, lease))
                .transpose()
        })
    }

    fn claim(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Operation, StoreError> {
        self.write(|transaction| {
            let operation = load_operation(transaction, id)?;
            if operation.status.is_final() {
                return Err(StoreError::AlreadyFinished {
                    id: id.into(),
                    status: operation.status,
                });
            }
            if let Some(held) = &operation.lease
                && held.worker != worker
                && held.expires_at > now
                && operation.status != OperationStatus::Waiting
            {
                return Err(StoreError::LeaseHeld {
                    id: id.into(),
                    holder: held.worker.clone(),
                    expires_at: held.expires_at,
                });
            }
            if operation.status == OperationStatus::Waiting
                && let Some(active) = active_operation(transaction, &operation.workflow)?
            {
                return Err(StoreError::WorkflowBusy {
                    id: id.into(),
                    workflow: operation.workflow,
                    active,
                });
            }
            take(transaction, &operation, worker, now, lease)
        })
    }

    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let connection = self.connection();
        let changed = connection
            .prepare_cached(
                "UPDATE operations SET lease_expires_at = ?3 \
                 WHERE id = ?1 AND lease_worker = ?2 AND status IN ('in_progress', 'canceling')",
            )?
            .execute(params![id, worker, time_text(later(now, lease))])?;
        if changed == 0 {
            load_operation(&connection, id)?;
        }
        Ok(changed == 1)
    }

    fn release(&self, id: &str, worker: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let connection = self.connection();
        let changed = connection
            .prepare_cached(
                "UPDATE operations SET lease_expires_at = min(lease_expires_at, ?3) \
                 WHERE id = ?1 AND lease_worker = ?2 AND status IN ('in_progress', 'canceling')",
            )?
            .execute(params![id, worker, time_text(now)])?;
        if changed == 0 {
            load_operation(&connection, id)?;
        }
        Ok(changed == 1)
    }

    fn save_checkpoint(
        &self,
        id: &str,
        worker: &str,
        checkpoint: &Checkpoint,
        counts: Counts,
        failures: &[RecordFailure],
        now: DateTime<Utc>,
    ) -> Result<CheckpointSaved, StoreError> {
        let checkpoint = to_json("checkpoint", checkpoint)?;
        self.write(|transaction| {
            let state = lease_state(transaction, id)?;
            ensure_holder(id, &state, worker)?;
            transaction
                .prepare_cached(
                    "UPDATE operations SET checkpoint = ?2, selected = coalesce(?3, selected), \
                     succeeded = ?4, failed = ?5, skipped = ?6, updated_at = ?7 WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    checkpoint,
                    counts.selected.map(count_value),
                    count_value(counts.succeeded),
                    count_value(counts.failed),
                    count_value(counts.skipped),
                    time_text(now),
                ])?;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO record_failures \
                 (operation_id, record_id, action_index, action, code, message, attempts, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (operation_id, record_id, action_index) DO UPDATE SET \
                 action = excluded.action, code = excluded.code, message = excluded.message, \
                 attempts = excluded.attempts, at = excluded.at",
            )?;
            for failure in failures {
                insert.execute(params![
                    id,
                    failure.record_id,
                    failure.action_index,
                    failure.action,
                    failure.code,
                    failure.message,
                    failure.attempts,
                    time_text(failure.at),
                ])?;
            }
            Ok(CheckpointSaved {
                cancel_requested: state.cancel_requested,
            })
        })
    }

    fn set_selected(&self, id: &str, selected: u64) -> Result<(), StoreError> {
        let changed = self
            .connection()
            .prepare_cached("UPDATE operations SET selected = ?2 WHERE id = ?1")?
            .execute(params![id, count_value(selected)])?;
        if changed == 0 {
            return Err(StoreError::OperationNotFound { id: id.into() });
        }
        Ok(())
    }

    fn request_cancel(&self, id: &str, now: DateTime<Utc>) -> Result<Operation, StoreError> {
        self.write(|transaction| {
            let operation = load_operation(transaction, id)?;
            match operation.status {
                OperationStatus::Waiting => {
                    transaction
                        .prepare_cached(
                            "UPDATE operations SET status = 'canceled', cancel_requested = 1, \
                             finished_at = ?2, updated_at = ?2, lease_worker = NULL, \
                             lease_expires_at = NULL WHERE id = ?1",
                        )?
                        .execute(params![id, time_text(now)])?;
                }
                OperationStatus::InProgress => {
                    transaction
                        .prepare_cached(
                            "UPDATE operations SET status = 'canceling', cancel_requested = 1, \
                             updated_at = ?2 WHERE id = ?1",
                        )?
                        .execute(params![id, time_text(now)])?;
                }
                OperationStatus::Canceling => return Ok(operation),
                status => {
                    return Err(StoreError::AlreadyFinished {
                        id: id.into(),
                        status,
                    });
                }
            }
            load_operation(transaction, id)
        })
    }

    fn finish(
        &self,
        id: &str,
        worker: &str,
        status: OperationStatus,
        error: Option<&OperationError>,
        delivery: Option<&NewDelivery>,
        now: DateTime<Utc>,
    ) -> Result<Operation, StoreError> {
        if !status.is_final() {
            return Err(StoreError::StatusNotFinal {
                id: id.into(),
                status,
            });
        }
        self.write(|transaction| {
            ensure_holder(id, &lease_state(transaction, id)?, worker)?;
            transaction
                .prepare_cached(
                    "UPDATE operations SET status = ?2, error_code = ?3, error_message = ?4, \
                     finished_at = ?5, updated_at = ?5, lease_worker = NULL, \
                     lease_expires_at = NULL WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    status.as_str(),
                    error.map(|error| error.code.as_str()),
                    error.map(|error| error.message.as_str()),
                    time_text(now),
                ])?;
            if let Some(delivery) = delivery {
                insert_delivery(transaction, id, delivery, now)?;
            }
            load_operation(transaction, id)
        })
    }

    fn failures(
        &self,
        id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<FailurePage, StoreError> {
        let limit = limit_of(limit);
        let after = cursor
            .map(|cursor| cursor.parse::<i64>().map_err(|_| invalid_cursor(cursor)))
            .transpose()?
            .unwrap_or(0);
        let connection = self.connection();
        load_operation(&connection, id)?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {FAILURE_COLUMNS} FROM record_failures \
             WHERE operation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let mut rows = statement.query(params![id, after, i64::from(limit) + 1])?;
        let mut failures = Vec::new();
        while let Some(row) = rows.next()? {
            failures.push(failure_from_row(row)?);
        }
        let next_cursor = if failures.len() > limit as usize {
            failures.truncate(limit as usize);
            failures.last().map(|(seq, _)| seq.to_string())
        } else {
            None
        };
        Ok(FailurePage {
            failures: failures.into_iter().map(|(_, failure)| failure).collect(),
            next_cursor,
        })
    }

    fn failed_record_ids(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let connection = self.connection();
        load_operation(&connection, id)?;
        let mut statement = connection.prepare_cached(
            "SELECT record_id FROM record_failures WHERE operation_id = ?1 \
             GROUP BY record_id ORDER BY min(seq)",
        )?;
        let ids = statement
            .query_map([id], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    fn status_counts(&self) -> Result<Vec<(OperationStatus, u64)>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare_cached("SELECT status, count(*) FROM operations GROUP BY status")?;
        let mut rows = statement.query([])?;
        let mut counts = Vec::new();
        while let Some(row) = rows.next()? {
            let status: String = row.get(0)?;
            let count: i64 = row.get(1)?;
            counts.push((
                parse_status("operations.status", &status)?,
                u64::try_from(count).unwrap_or_default(),
            ));
        }
        counts.sort_by_key(|(status, _)| OperationStatus::ALL.iter().position(|s| s == status));
        Ok(counts)
    }

    fn enqueue_delivery(
        &self,
        operation_id: &str,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        self.write(|transaction| {
            let state = lease_state(transaction, operation_id)?;
            if !state.status.is_final() {
                return Err(StoreError::StatusNotFinal {
                    id: operation_id.into(),
                    status: state.status,
                });
            }
            insert_delivery(transaction, operation_id, delivery, now)?;
            find_delivery(transaction, &delivery.id)
        })
    }

    fn due_deliveries(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        select_due(&self.connection(), now, limit)
    }

    fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.write(|transaction| {
            let mut deliveries = select_due(transaction, now, limit)?;
            let until = later(now, hold);
            let mut update = transaction
                .prepare_cached("UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1")?;
            for delivery in &mut deliveries {
                update.execute(params![delivery.id, time_text(until)])?;
                delivery.next_attempt_at = Some(until);
            }
            Ok(deliveries)
        })
    }

    fn record_attempt(
        &self,
        delivery_id: &str,
        outcome: &AttemptOutcome,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        self.write(|transaction| {
            let delivery = find_delivery(transaction, delivery_id)?;
            if delivery.status != DeliveryStatus::Pending {
                return Err(StoreError::DeliveryClosed {
                    id: delivery_id.into(),
                    status: delivery.status.as_str(),
                });
            }
            let attempt = log_attempt(transaction, &delivery, outcome, now)?;
            let status = if next_attempt_at.is_some() {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Abandoned
            };
            transaction
                .prepare_cached(
                    "UPDATE deliveries SET attempts = ?2, last_error = ?3, \
                     next_attempt_at = ?4, status = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    delivery_id,
                    attempt,
                    outcome.to_string(),
                    next_attempt_at.map(time_text),
                    status.as_str(),
                ])?;
            find_delivery(transaction, delivery_id)
        })
    }

    fn mark_delivered(
        &self,
        delivery_id: &str,
        status: u16,
        now: DateTime<Utc>,
    ) -> Result<Delivery, StoreError> {
        self.write(|transaction| {
            let delivery = find_delivery(transaction, delivery_id)?;
            let attempt =
                log_attempt(transaction, &delivery, &AttemptOutcome::Status(status), now)?;
            transaction
                .prepare_cached(
                    "UPDATE deliveries SET attempts = ?2, status = 'delivered', \
                     delivered_at = coalesce(delivered_at, ?3), next_attempt_at = NULL \
                     WHERE id = ?1",
                )?
                .execute(params![delivery_id, attempt, time_text(now)])?;
            find_delivery(transaction, delivery_id)
        })
    }

    fn deliveries(&self, operation_id: &str) -> Result<Vec<DeliveryLog>, StoreError> {
        let connection = self.connection();
        load_operation(&connection, operation_id)?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE operation_id = ?1 \
             ORDER BY created_at, id"
        ))?;
        let mut rows = statement.query([operation_id])?;
        let mut deliveries = Vec::new();
        while let Some(row) = rows.next()? {
            deliveries.push(delivery_from_row(row)?);
        }
        let mut attempts_of = connection.prepare_cached(
            "SELECT delivery_id, attempt, at, status_code, error FROM delivery_attempts \
             WHERE delivery_id = ?1 ORDER BY attempt",
        )?;
        let mut logs = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let mut rows = attempts_of.query([&delivery.id])?;
            let mut attempts = Vec::new();
            while let Some(row) = rows.next()? {
                attempts.push(attempt_from_row(row)?);
            }
            logs.push(DeliveryLog { delivery, attempts });
        }
        Ok(logs)
    }

    fn claim_fire(
        &self,
        workflow: &str,
        instant: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .connection()
            .prepare_cached(
                "INSERT OR IGNORE INTO fire_claims (workflow, instant, claimed_at) \
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![workflow, time_text(instant), time_text(now)])?;
        Ok(inserted == 1)
    }

    fn last_fire(&self, workflow: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let connection = self.connection();
        let last: Option<String> = connection
            .prepare_cached("SELECT max(instant) FROM fire_claims WHERE workflow = ?1")?
            .query_row([workflow], |row| row.get(0))
            .optional()?
            .flatten();
        last.map(|text| parse_time("fire_claims.instant", &text))
            .transpose()
    }

    fn save_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError> {
        if crate::compile::content_hash(&version.source) != version.version {
            return Err(StoreError::WorkflowVersionMismatch {
                name: version.name.clone(),
                version: version.version.clone(),
            });
        }
        // A plain insert that keeps an existing row: the first writer's `first_seen` stays,
        // and several processes saving one version at once never conflict.
        self.connection()
            .prepare_cached(
                "INSERT INTO workflow_versions (version, name, path, source, first_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (version) DO NOTHING",
            )?
            .execute(params![
                version.version,
                version.name,
                version.path.to_string_lossy(),
                version.source,
                time_text(version.first_seen),
            ])?;
        Ok(())
    }

    fn workflow_version(&self, version: &str) -> Result<Option<WorkflowVersion>, StoreError> {
        let connection = self.connection();
        let row: Option<(String, String, String, String)> = connection
            .prepare_cached(
                "SELECT name, path, source, first_seen FROM workflow_versions WHERE version = ?1",
            )?
            .query_row([version], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        row.map(|(name, path, source, first_seen)| {
            Ok(WorkflowVersion {
                version: version.to_string(),
                name,
                path: PathBuf::from(path),
                source,
                first_seen: parse_time("workflow_versions.first_seen", &first_seen)?,
            })
        })
        .transpose()
    }
}
