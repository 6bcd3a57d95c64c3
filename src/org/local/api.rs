//! Custom APIs the local org hosts, so that `call` actions run end to end without Dataverse,
//! and the log that makes a repeated call (same idempotency key) apply once.
//!
//! - `sample_RecalculateCredit` (`Target`: an account reference, `"account:<id>"` or the id):
//!   puts the account on credit hold when it has no revenue on record or less than
//!   [`CREDIT_HOLD_BELOW`], takes it off otherwise; returns `{"CreditOnHold": bool}`. The
//!   example workflow `recalculate-custom-api` calls it.
//! - `fetchflow_Echo` (any parameters): returns its parameters; changes nothing but the log.
//!
//! `background: true` runs the same way: the local org has no request time limit, so there is
//! nothing to move to the background. A call's key, API, parameters and response are kept in
//! `_fetchflow_api_calls`; a repeat of a key returns the stored response without running the
//! API again, and counts the repeat.

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use crate::org::local::rows::normalize_guid;
use crate::org::local::write::Context;
use crate::org::local::{LocalOrg, sqlite};
use crate::org::{ApiCall, OrgError, RecordError, Row, Write};

/// Revenue below which `sample_RecalculateCredit` puts an account on credit hold.
pub const CREDIT_HOLD_BELOW: f64 = 100_000.0;

/// The custom APIs of the local org: unique name and what it does.
pub const LOCAL_APIS: &[(&str, &str)] = &[
    (
        "sample_RecalculateCredit",
        "Target (account): credit hold on when revenue is missing or under 100,000, off otherwise",
    ),
    ("fetchflow_Echo", "returns its parameters; changes nothing"),
];

const LOG_TABLE: &str = "_fetchflow_api_calls";

/// The OData error Dataverse answers for an unknown operation ("Resource not found for the
/// segment"); the name is INVENTED, the number is the Web API's 0x8006088A.
const RESOURCE_NOT_FOUND: i64 = -2147088246;
const INVALID_ARGUMENT: i64 = -2147220989;
const OBJECT_DOES_NOT_EXIST: i64 = -2147220969;

/// How one call of the log was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedCall {
    pub idempotency_key: String,
    pub api: String,
    pub params: Row,
    pub response: Row,
    /// How many times the key was called (1 = never repeated).
    pub calls: u64,
}

pub(crate) fn call_batch(
    org: &LocalOrg,
    calls: &[ApiCall],
) -> Result<Vec<Result<Row, RecordError>>, OrgError> {
    let now = crate::org::local::rows::format_datetime(org.now());
    let mut connection = org.connection();
    let transaction = connection.transaction().map_err(sqlite)?;
    ensure_log(&transaction).map_err(sqlite)?;
    let context = Context {
        connection: &transaction,
        catalogue: org.catalogue(),
        caller: org.caller(),
        now: &now,
    };
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        results.push(one_call(&context, call, &now).map_err(sqlite)?);
    }
    transaction.commit().map_err(sqlite)?;
    Ok(results)
}

/// The call log, in key order.
pub(crate) fn logged_calls(org: &LocalOrg) -> Result<Vec<LoggedCall>, OrgError> {
    let connection = org.connection();
    ensure_log(&connection).map_err(sqlite)?;
    let mut statement = connection
        .prepare(&format!(
            "SELECT key, api, params, response, calls FROM {LOG_TABLE} ORDER BY key"
        ))
        .map_err(sqlite)?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .map_err(sqlite)?;
    let mut logged = Vec::new();
    for row in rows {
        let (idempotency_key, api, params, response, calls) = row.map_err(sqlite)?;
        logged.push(LoggedCall {
            idempotency_key,
            api,
            params: parse_object(&params)?,
            response: parse_object(&response)?,
            calls: u64::try_from(calls).unwrap_or(0),
        });
    }
    Ok(logged)
}

fn parse_object(text: &str) -> Result<Row, OrgError> {
    serde_json::from_str(text).map_err(|error| {
        crate::org::local::storage(format!("the API call log holds invalid JSON: {error}"))
    })
}

/// Orgs created before calls existed get the log on first use.
fn ensure_log(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
           key TEXT PRIMARY KEY,
           api TEXT NOT NULL,
           params TEXT NOT NULL,
           response TEXT NOT NULL,
           calls INTEGER NOT NULL,
           first_called_on TEXT NOT NULL,
           last_called_on TEXT NOT NULL
         ) WITHOUT ROWID"
    ))
}

fn record_error(code: &'static str, number: i64, message: impl Into<String>) -> RecordError {
    RecordError {
        code,
        number,
        message: message.into(),
    }
}

fn one_call(
    context: &Context<'_>,
    call: &ApiCall,
    now: &str,
) -> rusqlite::Result<Result<Row, RecordError>> {
    let earlier: Option<(String, String)> = context
        .connection
        .query_row(
            &format!("SELECT api, response FROM {LOG_TABLE} WHERE key = ?1"),
            [&call.idempotency_key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((api, response)) = earlier {
        if api != call.api {
            return Ok(Err(record_error(
                "InvalidArgument",
                INVALID_ARGUMENT,
                format!(
                    "idempotency key {} was already used for custom API `{api}`, not `{}`",
                    call.idempotency_key, call.api
                ),
            )));
        }
        context.connection.execute(
            &format!(
                "UPDATE {LOG_TABLE} SET calls = calls + 1, last_called_on = ?2 WHERE key = ?1"
            ),
            (&call.idempotency_key, now),
        )?;
        return Ok(serde_json::from_str::<Row>(&response).map_err(|error| {
            record_error(
                "StorageError",
                -2147220970,
                format!("the stored response of this call is invalid JSON: {error}"),
            )
        }));
    }
    let outcome = match call.api.as_str() {
        "sample_RecalculateCredit" => recalculate_credit(context, &call.params)?,
        "fetchflow_Echo" => Ok(call.params.clone()),
        other => Err(record_error(
            "ResourceNotFound",
            RESOURCE_NOT_FOUND,
            format!(
                "Resource not found for the segment '{other}': the local org has no custom API \
                 `{other}` (it hosts {})",
                LOCAL_APIS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    };
    let Ok(response) = outcome else {
        return Ok(outcome);
    };
    context.connection.execute(
        &format!(
            "INSERT INTO {LOG_TABLE} (key, api, params, response, calls, first_called_on, \
             last_called_on) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)"
        ),
        (
            &call.idempotency_key,
            &call.api,
            Value::Object(call.params.clone()).to_string(),
            Value::Object(response.clone()).to_string(),
            now,
        ),
    )?;
    Ok(Ok(response))
}

/// `Target` as an account id: `"account:<id>"`, or a bare id.
fn account_target(params: &Row) -> Result<String, RecordError> {
    let invalid = |message: String| record_error("InvalidArgument", INVALID_ARGUMENT, message);
    let target = params.get("Target").ok_or_else(|| {
        invalid("sample_RecalculateCredit needs the parameter `Target` (\"account:<id>\")".into())
    })?;
    let Value::String(text) = target else {
        return Err(invalid(format!(
            "Target must be an account reference \"account:<id>\", found {target}"
        )));
    };
    let id = match text.split_once(':') {
        Some(("account", id)) => id,
        Some((entity, _)) => {
            return Err(invalid(format!(
                "Target must reference an account, not a {entity}"
            )));
        }
        None => text.as_str(),
    };
    normalize_guid(&Value::String(id.to_string()))
        .map_err(|message| invalid(format!("Target: {message}")))
}

fn recalculate_credit(
    context: &Context<'_>,
    params: &Row,
) -> rusqlite::Result<Result<Row, RecordError>> {
    let id = match account_target(params) {
        Ok(id) => id,
        Err(error) => return Ok(Err(error)),
    };
    let revenue: Option<Option<f64>> = context
        .connection
        .query_row(
            "SELECT \"revenue\" FROM \"account\" WHERE \"accountid\" = ?1",
            [&id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(revenue) = revenue else {
        return Ok(Err(record_error(
            "ObjectDoesNotExist",
            OBJECT_DOES_NOT_EXIST,
            format!("account With Id = {id} Does Not Exist"),
        )));
    };
    let on_hold = revenue.is_none_or(|revenue| revenue < CREDIT_HOLD_BELOW);
    let mut values = Row::new();
    values.insert("creditonhold".into(), Value::Bool(on_hold));
    let update = Write::Update {
        entity: "account".into(),
        id,
        values,
    };
    Ok(context.apply(&update)?.map(|()| {
        let mut response = Row::new();
        response.insert("CreditOnHold".into(), Value::Bool(on_hold));
        response
    }))
}
