//! A batch of writes (reference §3): one result per write, in order.
//!
//! - Updates (creates) of one table that supports `UpdateMultiple` (`CreateMultiple`) go in one
//!   bulk request. Whether a table supports them is asked once per table from
//!   `sdkmessagefilters`, the documented test (reference §3.4; the Microsoft page notes that
//!   core tables such as account and contact did not; elastic tables all do). A bulk request
//!   on a standard table is all or nothing, so when it is refused for a record's reason (4xx),
//!   the same writes go again through `$batch` to learn each record's own result.
//! - Everything else (assign, set state, delete, unsupported tables, the fallback) goes in one
//!   `$batch` without change sets and with `Prefer: odata.continue-on-error`: each request
//!   stands alone and answers for itself. A single write is sent as a plain request.
//! - Records Dataverse did not answer (a batch that stopped at a failure despite
//!   continue-on-error, reference §7.1; parts answered 429 or 5xx) are sent again in a new
//!   `$batch`, at most [`ROUNDS`] times; then the whole batch fails retryable, and the engine
//!   retries it (every write is safe to repeat: PATCH, DELETE whose 404 means done, and creates
//!   with deterministic ids whose DuplicateRecord means done).
//! - A 404 on delete is that record's `ObjectDoesNotExist`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};

use crate::org::dataverse::Inner;
use crate::org::dataverse::batch::{self, MAX_BATCH, Part};
use crate::org::dataverse::errors::{answer_error, org_error, part_failure, record_error};
use crate::org::dataverse::transport::{API_PATH, Request, SETUP_TRIES};
use crate::org::odata::url_encode;
use crate::org::odata::{self, WriteRequest};
use crate::org::{OrgError, RecordError, Write};

/// How many `$batch` rounds the unanswered remainder of a batch gets.
pub(crate) const ROUNDS: u32 = 5;

/// The bypass header (needs the `prvBypassCustomPlugins` privilege, reference §3.1).
const BYPASS_HEADER: &str = "MSCRM.BypassCustomPluginExecution";

type WriteResult = Result<(), RecordError>;

pub(crate) async fn write_batch(
    inner: &Inner,
    writes: &[Write],
    bypass_plugins: bool,
) -> Result<Vec<WriteResult>, OrgError> {
    let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
    let mut requests: Vec<Option<WriteRequest>> = Vec::with_capacity(writes.len());
    for (slot, write) in writes.iter().enumerate() {
        match odata::write_request(write, &inner.catalogue) {
            Ok(request) => requests.push(Some(request)),
            Err(error) => {
                results[slot] = Some(Err(error.to_record_error()));
                requests.push(None);
            }
        }
    }
    let pending: Vec<usize> = (0..writes.len())
        .filter(|slot| results[*slot].is_none())
        .collect();
    if let Some(message) = bulk_message(writes, &pending)
        && inner.supports(&writes[pending[0]], message).await?
    {
        let targets: Vec<&WriteRequest> = pending
            .iter()
            .filter_map(|slot| requests[*slot].as_ref())
            .collect();
        if bulk(
            inner,
            &writes[pending[0]],
            message,
            &targets,
            bypass_plugins,
        )
        .await?
        {
            for slot in &pending {
                results[*slot] = Some(Ok(()));
            }
        }
    }
    let pending: Vec<usize> = (0..writes.len())
        .filter(|slot| results[*slot].is_none())
        .collect();
    if pending.len() == 1 {
        let slot = pending[0];
        if let Some(request) = &requests[slot] {
            results[slot] = Some(single(inner, request, bypass_plugins).await?);
        }
    } else if !pending.is_empty() {
        for chunk in pending.chunks(MAX_BATCH) {
            let parts: Vec<(usize, &WriteRequest)> = chunk
                .iter()
                .filter_map(|slot| requests[*slot].as_ref().map(|request| (*slot, request)))
                .collect();
            for (slot, result) in batched(inner, &parts, bypass_plugins).await? {
                results[slot] = Some(result);
            }
        }
    }
    results
        .into_iter()
        .map(|result| {
            result.ok_or_else(|| {
                org_error(
                    &inner.transport.connection,
                    "write batch",
                    "InvalidOrgResponse",
                    0,
                    "a write got no result",
                )
            })
        })
        .collect()
}

/// `UpdateMultiple` / `CreateMultiple` when every pending write is an update (a create) of
/// one table and there are at least two.
fn bulk_message(writes: &[Write], pending: &[usize]) -> Option<&'static str> {
    if pending.len() < 2 {
        return None;
    }
    let first = &writes[pending[0]];
    let same_table = pending
        .iter()
        .all(|slot| writes[*slot].entity() == first.entity());
    let all = |kind: fn(&Write) -> bool| pending.iter().all(|slot| kind(&writes[*slot]));
    if !same_table {
        None
    } else if all(|write| matches!(write, Write::Update { .. })) {
        Some("UpdateMultiple")
    } else if all(|write| matches!(write, Write::Create { .. })) {
        Some("CreateMultiple")
    } else {
        None
    }
}

impl Inner {
    /// Whether the write's table supports `message`, asked once per table.
    async fn supports(&self, write: &Write, message: &'static str) -> Result<bool, OrgError> {
        let key = (write.entity().to_string(), message);
        if let Some(known) = self.multiple.lock().await.get(&key) {
            return Ok(*known);
        }
        let filter = format!(
            "sdkmessageid/name eq '{message}' and primaryobjecttypecode eq '{}'",
            write.entity()
        );
        let query = format!("$select=sdkmessagefilterid&$filter={}", url_encode(&filter));
        let request = self
            .transport
            .request(Method::GET, "sdkmessagefilters", &query);
        let answer = self.transport.send_retrying(&request, SETUP_TRIES).await?;
        // Any refusal (an environment or emulator without the table) means "not known to be
        // supported": `$batch` always works.
        let supported = answer.is_success()
            && serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|json| {
                    json.get("value")
                        .and_then(Value::as_array)
                        .map(|v| !v.is_empty())
                })
                .unwrap_or(false);
        self.multiple.lock().await.insert(key, supported);
        Ok(supported)
    }
}

/// One bulk request; `Ok(true)` when every target was written, `Ok(false)` when Dataverse
/// refused it for a record's reason (so nothing was written: fall back to `$batch`).
async fn bulk(
    inner: &Inner,
    first: &Write,
    message: &'static str,
    targets: &[&WriteRequest],
    bypass_plugins: bool,
) -> Result<bool, OrgError> {
    let transport = &inner.transport;
    let Some(entity) = inner.catalogue.entity(first.entity()) else {
        return Ok(false);
    };
    let odata_type = odata::odata_type(&entity.logical_name);
    let mut list = Vec::with_capacity(targets.len());
    for target in targets {
        let mut body: Map<String, Value> = target.body.clone().unwrap_or_default();
        if message == "UpdateMultiple" {
            // The target's primary key identifies the row (reference §3.4).
            let id = target
                .path
                .rsplit_once('(')
                .and_then(|(_, id)| id.strip_suffix(')'))
                .unwrap_or_default();
            body.insert(entity.primary_id.clone(), Value::String(id.to_string()));
        }
        body.insert("@odata.type".into(), Value::String(odata_type.clone()));
        list.push(Value::Object(body));
    }
    let payload = serde_json::json!({ "Targets": list });
    let path = format!(
        "{}/Microsoft.Dynamics.CRM.{message}",
        entity.entity_set_name
    );
    let mut request = transport.request(Method::POST, &path, "");
    if bypass_plugins {
        request.headers.push((BYPASS_HEADER, "true".to_string()));
    }
    request.body = Some((
        "application/json; charset=utf-8".to_string(),
        payload.to_string().into_bytes(),
    ));
    let answer = transport.send(&request).await?;
    if !answer.is_success() {
        if (400..500).contains(&answer.status) {
            tracing::debug!(
                connection = %transport.connection,
                request = %request.describe,
                status = answer.status,
                "Bulk write refused; sending the records one by one in $batch."
            );
            return Ok(false);
        }
        return Err(answer_error(
            &transport.connection,
            &request.describe,
            answer.status,
            &answer.body,
        ));
    }
    if message == "CreateMultiple" {
        let ids = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|json| json.get("Ids").and_then(Value::as_array).map(Vec::len));
        if ids != Some(targets.len()) {
            let mut error = org_error(
                &transport.connection,
                &request.describe,
                "InvalidOrgResponse",
                0,
                format!(
                    "CreateMultiple answered {} ids for {} records (truncated?)",
                    ids.map_or_else(|| "no".to_string(), |n| n.to_string()),
                    targets.len()
                ),
            );
            // Creates are safe to repeat (deterministic ids).
            error.retryable = true;
            return Err(error);
        }
    }
    Ok(true)
}

/// The headers of one write request.
fn write_headers(request: &WriteRequest, bypass_plugins: bool) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if request.if_match_any {
        headers.push(("If-Match", "*".to_string()));
    }
    if bypass_plugins {
        headers.push((BYPASS_HEADER, "true".to_string()));
    }
    headers
}

/// The result of one answered write.
fn result_of(request: &WriteRequest, status: u16, body: &[u8]) -> WriteResult {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let mut error = record_error(status, body);
    if request.method == "DELETE" && status == 404 {
        // Gone already: the engine counts a replayed delete as done.
        error.code = "ObjectDoesNotExist";
        error.number = odata::OBJECT_DOES_NOT_EXIST;
    }
    Err(error)
}

/// One write as a plain request.
async fn single(
    inner: &Inner,
    write: &WriteRequest,
    bypass_plugins: bool,
) -> Result<WriteResult, OrgError> {
    let transport = &inner.transport;
    let method = Method::from_bytes(write.method.as_bytes()).unwrap_or(Method::PATCH);
    let mut request: Request = transport.request(method, &write.path, "");
    request.headers = write_headers(write, bypass_plugins);
    if let Some(body) = &write.body {
        request.body = Some((
            "application/json".to_string(),
            Value::Object(body.clone()).to_string().into_bytes(),
        ));
    }
    let answer = transport.send(&request).await?;
    Ok(result_of(write, answer.status, &answer.body))
}

/// Writes in `$batch` requests until each has its answer (see the module documentation).
async fn batched(
    inner: &Inner,
    writes: &[(usize, &WriteRequest)],
    bypass_plugins: bool,
) -> Result<Vec<(usize, WriteResult)>, OrgError> {
    let transport = &inner.transport;
    let mut done = Vec::with_capacity(writes.len());
    let mut pending: Vec<(usize, &WriteRequest)> = writes.to_vec();
    let mut last_failure: Option<OrgError> = None;
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        let parts: Vec<Part> = pending
            .iter()
            .map(|(_, write)| Part {
                method: write.method,
                path: format!("{API_PATH}{}", write.path),
                headers: write_headers(write, bypass_plugins),
                body: write
                    .body
                    .as_ref()
                    .map(|body| Value::Object(body.clone()).to_string()),
            })
            .collect();
        let (content_type, body) = batch::build(&parts);
        let mut request = transport.request(Method::POST, "$batch", "");
        request
            .headers
            .push(("Prefer", "odata.continue-on-error".to_string()));
        request.body = Some((content_type, body));
        let sent = std::time::Instant::now();
        let answer = transport.send(&request).await?;
        if !answer.is_success() {
            return Err(answer_error(
                &transport.connection,
                &request.describe,
                answer.status,
                &answer.body,
            ));
        }
        let content_type = answer.header("content-type").unwrap_or("").to_string();
        let answers = batch::parse(&content_type, &answer.body).map_err(|message| {
            let mut error = org_error(
                &transport.connection,
                &request.describe,
                "InvalidOrgResponse",
                0,
                message,
            );
            error.retryable = true;
            error
        })?;
        if answers.len() > pending.len() {
            return Err(org_error(
                &transport.connection,
                &request.describe,
                "InvalidOrgResponse",
                0,
                format!(
                    "the $batch answered {} parts for {} requests",
                    answers.len(),
                    pending.len()
                ),
            ));
        }
        let mut again = Vec::new();
        let mut wait: Option<Duration> = None;
        for (index, (slot, write)) in pending.iter().enumerate() {
            match answers.get(index) {
                Some(part) if part.status == 429 || part.status >= 500 => {
                    let failure = part_failure(&transport.connection, &request.describe, part);
                    wait = wait.max(failure.retry_after);
                    last_failure = Some(failure);
                    again.push((*slot, *write));
                }
                Some(part) => done.push((*slot, result_of(write, part.status, &part.body))),
                None => again.push((*slot, *write)),
            }
        }
        if let Some(wait) = wait {
            // Once per answer, however many of its parts were throttled.
            transport.budget.throttled(sent, wait);
        }
        if again.len() == pending.len() && last_failure.is_none() {
            // Nothing answered and nothing said why: not worth another round.
            break;
        }
        pending = again;
        if !pending.is_empty() {
            // A 429 already paused the connection's budget; otherwise back off a little.
            let backoff = Duration::from_millis(200u64 << round.min(5));
            tokio::time::sleep(wait.map_or(backoff, |_| Duration::ZERO)).await;
        }
    }
    if pending.is_empty() {
        return Ok(done);
    }
    Err(last_failure.unwrap_or_else(|| {
        let mut error = org_error(
            &transport.connection,
            "POST /api/data/v9.2/$batch",
            "InvalidOrgResponse",
            0,
            format!(
                "{} requests of the $batch were never answered",
                pending.len()
            ),
        );
        error.retryable = true;
        error
    }))
}
