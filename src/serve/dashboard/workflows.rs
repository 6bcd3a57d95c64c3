//! The workflows page (`/workflows`): every file as the API describes it (state and
//! diagnostics, version, triggers with their next fires, last run) and a "Run now" form per
//! runnable workflow (`POST /workflows/{name}/run`), with one input per declared var.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::DateTime;
use serde_json::{Value, json};

use crate::engine::resolve_cli_vars;
use crate::serve::api::workflows::{active_workflow, file_json, start_async_run};
use crate::serve::dashboard::session::{CheckedForm, Session};
use crate::serve::dashboard::{Dashboard, PageError, Shared, encode_component, see_other};
use crate::store::OperationStatus;

/// The form field of the var `name`.
const VAR_PREFIX: &str = "var.";

/// `GET /workflows`.
pub(super) async fn list(
    State(dashboard): State<Shared>,
    Extension(session): Extension<Session>,
) -> Response {
    let result = list_page(&dashboard, &session);
    dashboard.respond(Some(&session), result)
}

fn list_page(dashboard: &Dashboard, session: &Session) -> Result<Response, PageError> {
    let state = &dashboard.serve;
    let snapshot = state.registry.snapshot();
    let now = state.clock.now();
    let mut files = Vec::new();
    for (index, entry) in snapshot.files().enumerate() {
        let mut file = file_json(entry, &*state.store, now)?;
        let active = entry.active.as_deref();
        let vars: Vec<Value> = active
            .map(|active| active.workflow.vars.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(var_index, (name, default))| {
                json!({
                    "name": name,
                    "field": format!("{VAR_PREFIX}{name}"),
                    "id": format!("wf{index}-var{var_index}"),
                    "value": var_text(default),
                })
            })
            .collect();
        if let Value::Object(map) = &mut file {
            map.insert("anchor".into(), json!(format!("wf{index}")));
            map.insert("vars".into(), json!(vars));
            map.insert(
                "run_url".into(),
                json!(
                    active.map(|active| format!(
                        "/workflows/{}/run",
                        encode_component(active.name())
                    ))
                ),
            );
            for key in ["version", "active_version"] {
                let short = map
                    .get(key)
                    .and_then(Value::as_str)
                    .map(|version| version.get(..12).unwrap_or(version).to_string());
                map.insert(format!("short_{key}"), json!(short));
            }
            if let Some(Value::Array(triggers)) = map.get_mut("triggers") {
                for trigger in triggers.iter_mut() {
                    shown_fires(trigger);
                }
            }
            if let Some(Value::Object(last)) = map.get_mut("last_run") {
                let status = last
                    .get("status")
                    .and_then(Value::as_str)
                    .and_then(|status| status.parse::<OperationStatus>().ok());
                let id = last.get("id").and_then(Value::as_str).unwrap_or_default();
                let url = format!("/operations/{}", encode_component(id));
                last.insert("url".into(), json!(url));
                last.insert(
                    "status_name".into(),
                    json!(status.map(OperationStatus::display_name)),
                );
            }
        }
        files.push(file);
    }
    let context = json!({"title": "Workflows", "files": files});
    Ok(dashboard.page("workflows.html", Some(session), "workflows", context))
}

/// A var's default as the text of its input: what `--var name=<text>` would parse back to the
/// same value (strings as they are, other values as JSON, no default as nothing).
fn var_text(default: &Value) -> String {
    match default {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Adds `utc_shown` and `local_shown` to each next fire of a cron trigger's JSON.
fn shown_fires(trigger: &mut Value) {
    let Some(Value::Array(fires)) = trigger.get_mut("next_fires") else {
        return;
    };
    for fire in fires.iter_mut() {
        let Value::Object(fire) = fire else { continue };
        for (key, format) in [
            ("utc", "%Y-%m-%d %H:%M UTC"),
            ("local", "%Y-%m-%d %H:%M (UTC%:z)"),
        ] {
            let shown =
                fire.get(key).and_then(Value::as_str).map(
                    |text| match DateTime::parse_from_rfc3339(text) {
                        Ok(at) => at.format(format).to_string(),
                        Err(_) => text.to_string(),
                    },
                );
            fire.insert(format!("{key}_shown"), json!(shown));
        }
    }
}

/// `POST /workflows/{name}/run`: an async run with the form's vars (typed as `--var` values
/// are), trigger `api` as the API's runs; 303 to the new operation.
pub(super) async fn run_now(
    State(dashboard): State<Shared>,
    Path(name): Path<String>,
    form: CheckedForm,
) -> Response {
    let result = (|| -> Result<Response, PageError> {
        let state = &dashboard.serve;
        let active = active_workflow(&state.registry.snapshot(), &name)?;
        let args: Vec<String> = form
            .fields
            .iter()
            .filter_map(|(field, value)| {
                let var = field.strip_prefix(VAR_PREFIX)?;
                // An empty input of a var without a default keeps it unset (null).
                let unset = value.is_empty()
                    && active
                        .workflow
                        .vars
                        .iter()
                        .any(|(name, default)| name == var && default.is_null());
                (!unset).then(|| format!("{var}={value}"))
            })
            .collect();
        let vars = resolve_cli_vars(&active.workflow.vars, &args)
            .map_err(|error| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
        let operation = start_async_run(state, &active, vars)?;
        Ok(see_other(&format!(
            "/operations/{}",
            encode_component(&operation.id)
        )))
    })();
    dashboard.respond(Some(&form.session), result)
}
