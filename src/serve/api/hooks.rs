//! `POST /hooks/{name}`: a webhook trigger. When the trigger has a `secret`, the body's
//! HMAC-SHA256 must match `X-Fetchflow-Signature: sha256=<hex>` (constant-time); the JSON body
//! (an object) becomes the run's vars; the run is a background operation launched with the
//! workflow's `overlap` policy.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::callback::hmac::verify_signature;
use crate::compile::{Mode, Trigger as WorkflowTrigger, Workflow};
use crate::engine::{Launch, LaunchRequest, launch, resolve_json_vars};
use crate::serve::ServeState;
use crate::serve::api::error::{ApiError, ApiPath, RawBody, parse_json_body};
use crate::serve::api::workflows::{active_workflow, created};
use crate::store::Trigger;
use crate::template::{RenderError, TemplateSet, value_from_json};
use crate::view::operation_json;

/// The header that carries the body's signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-fetchflow-signature";

/// The template key of a webhook trigger's secret, as its errors name it.
const SECRET_KEY: &str = "webhook.secret";

/// Counts the request as accepted (a run was started or skipped by `overlap`) or rejected.
pub(super) async fn receive_webhook(
    State(state): State<ServeState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Result<RawBody, ApiError>,
) -> Result<Response, ApiError> {
    let outcome = body.and_then(|RawBody(body)| accept_webhook(&state, &name, &headers, &body));
    state.metrics.webhook(outcome.is_ok());
    outcome
}

fn accept_webhook(
    state: &ServeState,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let active = active_workflow(&state.registry.snapshot(), name)?;
    let workflow = &*active.workflow;
    let secret = workflow
        .triggers
        .iter()
        .find_map(|trigger| match trigger {
            WorkflowTrigger::Webhook(webhook) => Some(webhook.secret.as_deref()),
            WorkflowTrigger::Cron(_) => None,
        })
        .ok_or_else(|| {
            ApiError::not_found(
                "webhook_not_found",
                format!(
                    "workflow `{name}` has no webhook trigger; add `- webhook: {{}}` to its \
                     `triggers` to start it with POST /hooks/{name}"
                ),
            )
        })?;
    if let Some(template) = secret {
        let key = webhook_key(state, workflow, template)?;
        check_signature(headers, key.as_bytes(), body)?;
    }
    let overrides: Map<String, Value> = match parse_json_body::<Value>(headers, body)? {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the webhook body must be a JSON object of run vars, e.g. {\"territory\": \"West\"}",
            ));
        }
    };
    let vars = resolve_json_vars(&workflow.vars, &overrides)
        .map_err(|error| ApiError::unprocessable("invalid_vars", error.to_string()))?;
    // A webhook run is always a background operation: only its creator runs a sync one, and
    // the sender gets its answer before the run ends.
    let launched = launch(
        &*state.store,
        &LaunchRequest {
            workflow,
            source: &active.source,
            vars,
            trigger: Trigger::Webhook,
            mode: Mode::Async,
            git_commit: None,
            now: state.clock.now(),
            apply_overlap: true,
        },
    )?;
    Ok(match launched {
        Launch::Created(operation) => {
            state.work.notify_one();
            created(
                &operation.id,
                json!({"outcome": "created", "operation": operation_json(&operation)}),
            )
        }
        Launch::Replaced {
            operation,
            canceled,
        } => {
            state.work.notify_one();
            created(
                &operation.id,
                json!({
                    "outcome": "replaced",
                    "operation": operation_json(&operation),
                    "canceled": canceled,
                }),
            )
        }
        Launch::Skipped { active } => (
            StatusCode::OK,
            Json(json!({
                "outcome": "skipped",
                "active_operation": active,
                "message": format!(
                    "not started: operation {active} of workflow `{name}` is active and the \
                     workflow says `overlap: skip`"
                ),
            })),
        )
            .into_response(),
    })
}

/// The HMAC key: the trigger's `secret` template rendered with the secrets of this process.
/// Its value never appears in an error; a missing secret names the variable.
fn webhook_key(
    state: &ServeState,
    workflow: &Workflow,
    template: &str,
) -> Result<String, ApiError> {
    let mut templates = TemplateSet::with_secrets(state.secrets.clone());
    templates.add(SECRET_KEY, template).map_err(|problem| {
        ApiError::internal(
            "webhook_secret_failed",
            format!(
                "the webhook secret of workflow `{}` is not a valid template: {}",
                workflow.name, problem.message
            ),
        )
    })?;
    let ctx = value_from_json(&json!({
        "workflow": {"name": workflow.name, "version": workflow.version},
    }));
    let key = templates
        .render(SECRET_KEY, &ctx)
        .map_err(|error| match error {
            RenderError::SecretMissing { name, .. } => ApiError::internal(
                "webhook_secret_missing",
                format!(
                    "the webhook secret of workflow `{}` reads the environment variable `{name}`, \
                 which is not set",
                    workflow.name
                ),
            ),
            error => ApiError::internal(
                "webhook_secret_failed",
                format!(
                    "the webhook secret of workflow `{}` could not be rendered: {error}",
                    workflow.name
                ),
            ),
        })?;
    if key.is_empty() {
        return Err(ApiError::internal(
            "webhook_secret_failed",
            format!(
                "the webhook secret of workflow `{}` rendered to an empty key",
                workflow.name
            ),
        ));
    }
    Ok(key)
}

fn check_signature(headers: &HeaderMap, key: &[u8], body: &[u8]) -> Result<(), ApiError> {
    let header = headers.get(SIGNATURE_HEADER).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_missing",
            "this webhook requires `X-Fetchflow-Signature: sha256=<hex HMAC-SHA256 of the body>`",
        )
    })?;
    let valid = header
        .to_str()
        .is_ok_and(|value| verify_signature(key, body, value.trim()));
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
            "the X-Fetchflow-Signature header does not match the HMAC-SHA256 of the body",
        ))
    }
}
