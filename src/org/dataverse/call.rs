//! Custom API calls (reference §1): `POST <api>` with the parameters as JSON (entity
//! references as `{"@odata.type": "Microsoft.Dynamics.CRM.<entity>", "<pk>": "<id>"}`), the
//! output parameters as the call's row. `background: true` adds `Prefer: respond-async`: a
//! `202 Accepted` with a `Location` (the status monitor resource) is polled until the
//! operation completes; its state/status becomes success or the record's error.
//!
//! The idempotency key goes in the `Idempotency-Key` header (the IETF httpapi draft's name);
//! Dataverse ignores it, a receiver that remembers keys (the emulator, a custom API that reads
//! it) applies a repeated call once.
//!
//! Calls of a batch run concurrently under the connection's budget. A call whose request fails
//! retryably (429, 5xx, timeout) is tried again here, up to [`CALL_TRIES`] in all, because
//! failing the whole batch would repeat every other call of it; after that the batch fails
//! retryable and the engine's policy takes over (calls are at-least-once, DESIGN 7.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value};

use crate::org::dataverse::Inner;
use crate::org::dataverse::errors::{code_name, org_error, record_error};
use crate::org::dataverse::transport::Request;
use crate::org::odata;
use crate::org::{ApiCall, OrgError, RecordError, Row};

/// Tries of one call's request before the batch fails.
pub(crate) const CALL_TRIES: u32 = 3;

/// The header that carries a call's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

type CallResult = Result<Row, RecordError>;

pub(crate) async fn call_batch(
    inner: Arc<Inner>,
    calls: &[ApiCall],
) -> Result<Vec<CallResult>, OrgError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, call) in calls.iter().enumerate() {
        let inner = inner.clone();
        let call = call.clone();
        tasks.spawn(async move { (index, one_call(&inner, &call).await) });
    }
    let mut results: Vec<Option<CallResult>> = vec![None; calls.len()];
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(result))) => results[index] = Some(result),
            Ok((_, Err(error))) => failure = failure.or(Some(error)),
            Err(error) => {
                failure = failure.or(Some(org_error(
                    &inner.transport.connection,
                    "call batch",
                    "InvalidOrgResponse",
                    0,
                    format!("a call task failed: {error}"),
                )));
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(RecordError {
                    code: "InvalidOrgResponse",
                    number: 0,
                    message: "the call got no result".to_string(),
                })
            })
        })
        .collect())
}

/// One call, retried as the module documentation says.
async fn one_call(inner: &Inner, call: &ApiCall) -> Result<CallResult, OrgError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match try_call(inner, call).await {
            Err(error) if error.retryable && tries < CALL_TRIES => {
                // A 429 paused the whole connection already; the budget makes the next try
                // wait for it. Otherwise a short backoff.
                if error.retry_after.is_none() {
                    tokio::time::sleep(Duration::from_millis(250 << tries)).await;
                }
            }
            other => return other,
        }
    }
}

async fn try_call(inner: &Inner, call: &ApiCall) -> Result<CallResult, OrgError> {
    let transport = &inner.transport;
    let body = odata::api_params_to_body(&call.params, &inner.catalogue);
    let mut request = transport.request(Method::POST, &call.api, "");
    request
        .headers
        .push((IDEMPOTENCY_HEADER, call.idempotency_key.clone()));
    if call.background {
        request
            .headers
            .push(("Prefer", "respond-async".to_string()));
    }
    request.body = Some((
        "application/json".to_string(),
        Value::Object(body).to_string().into_bytes(),
    ));
    let answer = transport.send(&request).await?;
    match answer.status {
        202 if call.background => {
            let location = answer.header("location").ok_or_else(|| {
                org_error(
                    &transport.connection,
                    &request.describe,
                    "InvalidOrgResponse",
                    0,
                    "202 Accepted without a Location",
                )
            })?;
            poll(inner, location, &request.describe).await
        }
        204 => Ok(Ok(Row::new())),
        status if (200..300).contains(&status) => {
            Ok(Ok(outputs(&answer.body).map_err(|what| {
                let mut error = org_error(
                    &transport.connection,
                    &request.describe,
                    "InvalidOrgResponse",
                    0,
                    what,
                );
                error.retryable = true;
                error
            })?))
        }
        status => Ok(Err(record_error(status, &answer.body))),
    }
}

/// The output parameters of a response body: every property but annotations.
fn outputs(body: &[u8]) -> Result<Row, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Row::new());
    }
    let json: Value = serde_json::from_slice(body)
        .map_err(|error| format!("the response is not JSON (truncated?): {error}"))?;
    let object = json
        .as_object()
        .ok_or("the response is not a JSON object")?;
    Ok(object
        .iter()
        .filter(|(key, _)| !key.starts_with('@') && !key.contains("@odata"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect())
}

/// Polls the status monitor resource until the background operation completes.
async fn poll(inner: &Inner, location: &str, started_by: &str) -> Result<CallResult, OrgError> {
    let transport = &inner.transport;
    // The token goes only to the environment it was issued for.
    if !location.starts_with(&format!("{}/", transport.org_url)) {
        return Err(org_error(
            &transport.connection,
            started_by,
            "InvalidOrgResponse",
            0,
            "the background operation's Location is not on this environment",
        ));
    }
    let path = &location[transport.org_url.len()..];
    let request = Request {
        method: Method::GET,
        url: location.to_string(),
        describe: format!("GET {}", path.split('?').next().unwrap_or(path)),
        headers: Vec::new(),
        body: None,
    };
    let deadline = Instant::now() + inner.options.background_timeout;
    let mut interval = inner.options.poll_interval;
    let mut failures = 0;
    loop {
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(inner.options.max_poll_interval);
        if Instant::now() > deadline {
            let mut error = org_error(
                &transport.connection,
                &request.describe,
                "RequestTimeout",
                0,
                format!(
                    "the background operation did not complete within {} s",
                    inner.options.background_timeout.as_secs()
                ),
            );
            error.retryable = true;
            return Err(error);
        }
        let answer = match transport.send(&request).await {
            Ok(answer) => answer,
            // A poll that fails retryably is simply a poll that did not tell us anything yet.
            Err(error) if error.retryable && failures < CALL_TRIES => {
                failures += 1;
                continue;
            }
            Err(error) => return Err(error),
        };
        failures = 0;
        if !answer.is_success() {
            return Ok(Err(record_error(answer.status, &answer.body)));
        }
        let status: Map<String, Value> = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|json| json.as_object().cloned())
            .ok_or_else(|| {
                let mut error = org_error(
                    &transport.connection,
                    &request.describe,
                    "InvalidOrgResponse",
                    0,
                    "the status monitor's answer is not a JSON object (truncated?)",
                );
                error.retryable = true;
                error
            })?;
        let state = status
            .get("backgroundOperationStateCode")
            .and_then(Value::as_i64);
        if state != Some(3) {
            continue;
        }
        let code = status
            .get("backgroundOperationStatusCode")
            .and_then(Value::as_i64);
        return Ok(match code {
            Some(30) => Ok(status
                .into_iter()
                .filter(|(key, _)| !key.starts_with("backgroundOperation") && !key.starts_with('@'))
                .collect()),
            Some(32) => Err(RecordError {
                code: "Canceled",
                number: 0,
                message: "the background operation was canceled".to_string(),
            }),
            other => {
                let number = status
                    .get("backgroundOperationErrorCode")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let message = status
                    .get("backgroundOperationErrorMessage")
                    .and_then(Value::as_str)
                    .map_or_else(
                        || format!("the background operation failed (status {other:?})"),
                        str::to_string,
                    );
                Err(RecordError {
                    code: if number == 0 {
                        "BackgroundOperationFailed"
                    } else {
                        code_name(number)
                    },
                    number,
                    message,
                })
            }
        });
    }
}
