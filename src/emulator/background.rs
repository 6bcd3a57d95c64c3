//! The local org's custom APIs as Web API actions (`POST /api/data/v9.2/<UniqueName>` with
//! JSON parameters, entity references as `{"@odata.type": …, "<primaryid>": …}`), run inline
//! or, with `Prefer: respond-async`, as background operations (reference §1): 202 with
//! `Location: [Org]/api/backgroundoperation/<id>` and `x-ms-dyn-backgroundoperationid`; the
//! status monitor resource (`GET`, `DELETE` to cancel); the `backgroundoperations(<id>)` table
//! row (`GET`, `PATCH` to cancel); and the callback `POST` when `odata.callback; url="…"` is
//! given. Operations live in memory for the emulator's lifetime.
//!
//! An emulator extension: the request header `Idempotency-Key` (or `x-fetchflow-idempotency-key`)
//! becomes the local org's idempotency key, so a repeated call is answered from the org's log
//! instead of running again (Dataverse ignores unknown headers, so a client may always send it).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::emulator::entities::{json_response, parse_id};
use crate::emulator::error::{DvError, ITEM_NOT_FOUND};
use crate::emulator::request::Call;
use crate::emulator::{Emulator, blocking, journal};
use crate::org::odata::{self, split_lookup};
use crate::org::{ApiCall, Row};

/// The idempotency-key headers (emulator extension, see the module doc): the IETF httpapi
/// draft's name, which the connector sends, and our own.
pub(crate) const IDEMPOTENCY_HEADERS: [&str; 2] =
    ["idempotency-key", "x-fetchflow-idempotency-key"];

/// Default `ttlinseconds`: 90 days (reference §1.5).
const TTL_SECONDS: i64 = 90 * 24 * 3600;

/// State and status codes (reference §1.5).
const READY: (i32, i32) = (0, 0);
const IN_PROGRESS: (i32, i32) = (2, 20);
const CANCELING: (i32, i32) = (2, 22);
const SUCCEEDED: (i32, i32) = (3, 30);
const FAILED: (i32, i32) = (3, 31);
const CANCELED: (i32, i32) = (3, 32);

/// Background operations by id.
#[derive(Debug, Default)]
pub(crate) struct Operations {
    operations: Mutex<HashMap<String, Operation>>,
}

#[derive(Debug, Clone)]
struct Operation {
    id: String,
    name: String,
    input: Row,
    codes: (i32, i32),
    output: Option<Row>,
    error: Option<(i64, String)>,
    created_on: String,
    start_time: Option<String>,
    end_time: Option<String>,
    location: String,
}

impl Operations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Operation>> {
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Option<Operation> {
        self.lock().get(id).cloned()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Operation)) {
        if let Some(operation) = self.lock().get_mut(id) {
            change(operation);
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `POST /api/data/v9.2/<api>`: inline, or as a background operation.
pub(crate) async fn custom_api(
    emulator: &Emulator,
    call: Call,
    api: &'static str,
) -> Result<Response, DvError> {
    let body = if call.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        call.json_object()?
    };
    let params = odata::body_to_api_params(&body, emulator.org.catalogue())?;
    let key = IDEMPOTENCY_HEADERS
        .iter()
        .find_map(|name| call.header(name))
        .filter(|key| !key.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let api_call = ApiCall {
        api: api.to_owned(),
        params,
        idempotency_key: key,
        background: false,
    };
    let prefer = call.prefer();
    if !prefer.respond_async {
        let output = run(emulator, call.journal.as_ref(), api_call).await?;
        let mut body = output;
        body.insert(
            "@odata.context".into(),
            Value::String(format!(
                "{}$metadata#Microsoft.Dynamics.CRM.{api}Response",
                call.api_url()
            )),
        );
        return Ok(json_response(StatusCode::OK, Value::Object(body)));
    }
    if call.journal.is_some() {
        return Err(DvError::bad_request(
            "A background operation (Prefer: respond-async) cannot run inside a change set.",
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let location = format!("{}/api/backgroundoperation/{id}", call.base);
    emulator.background.lock().insert(
        id.clone(),
        Operation {
            id: id.clone(),
            name: api.to_owned(),
            input: api_call.params.clone(),
            codes: READY,
            output: None,
            error: None,
            created_on: now(),
            start_time: None,
            end_time: None,
            location: location.clone(),
        },
    );
    let callback = prefer.callback_url.clone();
    let task_emulator = emulator.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        run_in_background(task_emulator, task_id, api_call, callback).await;
    });
    let mut response = if prefer.callback_url.is_some() {
        let mut response = json_response(
            StatusCode::ACCEPTED,
            json!({"backgroundOperationId": id, "location": location}),
        );
        response
            .headers_mut()
            .insert("Preference-Applied", HeaderValue::from_static("callback"));
        response
    } else {
        let mut response = StatusCode::ACCEPTED.into_response();
        response.headers_mut().insert(
            "Preference-Applied",
            HeaderValue::from_static("respond-async"),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert("x-ms-dyn-backgroundoperationid", value);
    }
    Ok(response)
}

/// Runs one call on the local org; inside a change set, its target row and log entry go into
/// the change set's journal.
async fn run(
    emulator: &Emulator,
    journal: Option<&journal::Shared>,
    call: ApiCall,
) -> Result<Row, DvError> {
    let _gate = emulator.gate(journal).await;
    let org = emulator.org.clone();
    let shared = journal.cloned();
    blocking(move || {
        if let Some(shared) = &shared {
            let mut journal = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for value in call.params.values() {
                if let Some(text) = value.as_str()
                    && let Some((Some(entity), id)) = split_lookup(text)
                {
                    journal.copy_row(&org, entity, &id)?;
                }
            }
            journal.note_api_call(&call.idempotency_key);
        }
        let results = org.call(std::slice::from_ref(&call))?;
        match results.into_iter().next() {
            Some(Ok(output)) => Ok(output),
            Some(Err(error)) => Err(DvError::from(error)),
            None => Err(DvError::internal("the local org returned no result")),
        }
    })
    .await
}

async fn run_in_background(
    emulator: Emulator,
    id: String,
    call: ApiCall,
    callback: Option<String>,
) {
    let delay = emulator.options.background_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut start = false;
    emulator.background.update(&id, |operation| {
        if operation.codes == READY {
            operation.codes = IN_PROGRESS;
            operation.start_time = Some(now());
            start = true;
        }
    });
    if start {
        let result = run(&emulator, None, call).await;
        emulator.background.update(&id, |operation| {
            match result {
                Ok(output) => {
                    operation.codes = SUCCEEDED;
                    operation.output = Some(output);
                }
                Err(error) => {
                    operation.codes = FAILED;
                    operation.error = Some((error.number, error.message));
                }
            }
            operation.end_time = Some(now());
        });
    }
    let (Some(url), Some(operation)) = (callback, emulator.background.get(&id)) else {
        return;
    };
    let mut payload = json!({
        "location": operation.location,
        "backgroundOperationId": operation.id,
        "backgroundOperationStateCode": operation.codes.0,
        "backgroundOperationStatusCode": operation.codes.1,
    });
    if let Some((number, message)) = &operation.error {
        payload["backgroundOperationErrorCode"] = json!(number);
        payload["backgroundOperationErrorMessage"] = json!(message);
    }
    // Delivered at least once: three attempts, one second apart.
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let sent = emulator
            .http
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(payload.to_string())
            .send()
            .await;
        if sent.is_ok_and(|response| response.status().is_success()) {
            return;
        }
    }
    tracing::warn!(message = "Background operation callback not delivered.", operation = %id);
}

fn not_found(id: &str) -> DvError {
    DvError::new(
        StatusCode::NOT_FOUND,
        ITEM_NOT_FOUND,
        format!("Could not find item '{id}'."),
    )
}

/// The status monitor body: codes, and the outputs or the error.
fn monitor_body(operation: &Operation) -> Value {
    let mut body = Map::new();
    body.insert(
        "backgroundOperationStateCode".into(),
        json!(operation.codes.0),
    );
    body.insert(
        "backgroundOperationStatusCode".into(),
        json!(operation.codes.1),
    );
    if let Some((number, message)) = &operation.error {
        body.insert("backgroundOperationErrorCode".into(), json!(number));
        body.insert("backgroundOperationErrorMessage".into(), json!(message));
    }
    if let Some(output) = &operation.output {
        for (key, value) in output {
            body.insert(key.clone(), value.clone());
        }
    }
    Value::Object(body)
}

/// `GET /api/backgroundoperation/{id}`.
pub(crate) async fn monitor_get(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
) -> Response {
    let id = id.to_ascii_lowercase();
    match emulator.background.get(&id) {
        Some(operation) => json_response(StatusCode::OK, monitor_body(&operation)),
        None => not_found(&id).into_response(),
    }
}

/// Cancels an operation: effective only before it started (reference §1.8).
fn cancel(emulator: &Emulator, id: &str) -> Result<(), DvError> {
    let mut operations = emulator.background.lock();
    let operation = operations.get_mut(id).ok_or_else(|| not_found(id))?;
    match operation.codes.0 {
        3 => Err(DvError::bad_request(
            "Canceling background operation is not allowed after it is in terminal state.",
        )),
        0 => {
            operation.codes = CANCELED;
            operation.end_time = Some(now());
            Ok(())
        }
        // Started: Dataverse does not stop it.
        _ => Ok(()),
    }
}

/// `DELETE /api/backgroundoperation/{id}`: 200 with the Canceling codes.
pub(crate) async fn monitor_delete(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
) -> Response {
    let id = id.to_ascii_lowercase();
    match cancel(&emulator, &id) {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"backgroundOperationStateCode": CANCELING.0, "backgroundOperationStatusCode": CANCELING.1}),
        ),
        Err(error) => error.into_response(),
    }
}

/// `{"Key": …, "Value": …}` pairs as a JSON string, as the table stores parameters.
fn key_values(row: &Row) -> String {
    let pairs: Vec<Value> = row
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(text) => Value::String(text.clone()),
                other => Value::String(other.to_string()),
            };
            json!({"Key": key, "Value": value})
        })
        .collect();
    Value::Array(pairs).to_string()
}

fn table_row(operation: &Operation) -> Map<String, Value> {
    let mut row = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            row.insert(key.to_owned(), value);
        }
    };
    put("backgroundoperationid", json!(operation.id));
    put("name", json!(operation.name));
    put("displayname", json!(operation.name));
    put("backgroundoperationstatecode", json!(operation.codes.0));
    put("backgroundoperationstatuscode", json!(operation.codes.1));
    put("inputparameters", json!(key_values(&operation.input)));
    put(
        "outputparameters",
        operation
            .output
            .as_ref()
            .map_or(Value::Null, |output| json!(key_values(output))),
    );
    put(
        "errorcode",
        operation
            .error
            .as_ref()
            .map_or(Value::Null, |(number, _)| json!(number)),
    );
    put(
        "errormessage",
        operation
            .error
            .as_ref()
            .map_or(Value::Null, |(_, message)| json!(message)),
    );
    put("createdon", json!(operation.created_on));
    put("starttime", json!(operation.start_time));
    put("endtime", json!(operation.end_time));
    put("ttlinseconds", json!(TTL_SECONDS));
    row
}

/// `backgroundoperations(<id>)`: `GET` (with `$select`), `PATCH` to cancel.
pub(crate) async fn table(
    emulator: &Emulator,
    call: &Call,
    key: Option<&str>,
) -> Result<Response, DvError> {
    let Some(key) = key else {
        return Err(DvError::method_not_allowed(
            call.method.as_str(),
            "backgroundoperations (address one operation: backgroundoperations(<id>))",
        ));
    };
    let id = parse_id(key)?;
    match call.method {
        Method::GET => {
            let operation = emulator.background.get(&id).ok_or_else(|| not_found(&id))?;
            let mut row = table_row(&operation);
            if let Some(select) = call.query_param("$select") {
                let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
                row.retain(|key, _| wanted.contains(&key.as_str()));
            }
            row.insert(
                "@odata.context".into(),
                Value::String(format!(
                    "{}$metadata#backgroundoperations/$entity",
                    call.api_url()
                )),
            );
            Ok(json_response(StatusCode::OK, Value::Object(row)))
        }
        Method::PATCH => {
            let body = call.json_object()?;
            let state = body
                .get("backgroundoperationstatecode")
                .and_then(Value::as_i64);
            let status = body
                .get("backgroundoperationstatuscode")
                .and_then(Value::as_i64);
            if (state, status) != (Some(2), Some(22)) {
                return Err(DvError::bad_request(
                    "Only cancel is supported: backgroundoperationstatecode 2 and \
                     backgroundoperationstatuscode 22.",
                ));
            }
            cancel(emulator, &id)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(DvError::method_not_allowed(
            call.method.as_str(),
            "backgroundoperations",
        )),
    }
}
