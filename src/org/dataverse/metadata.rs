//! The catalogue of a Dataverse environment: pulled from the Web API metadata
//! (`EntityDefinitions`, each table's `Attributes` and the typed casts that carry lookup
//! targets and option sets), or read from the cache file `metadata pull` writes.
//!
//! The cache file lives under the state directory: `<state dir>/metadata/<connection>.json`
//! (`.fetchflow/metadata/prod.json` with the default `state: .fetchflow/state.db`). It holds
//! `{"format": 1, "connection", "url", "pulled_at", "entities": [EntityMeta...]}`; a file
//! pulled from another URL is ignored, so pointing a connection at another environment never
//! validates against the old one's tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metadata::{AttributeMeta, AttributeType, Catalogue, EntityMeta, OptionMeta, StateMeta};
use crate::org::OrgError;
use crate::org::dataverse::errors::{answer_error, org_error};
use crate::org::dataverse::transport::{Request, SETUP_TRIES, Transport};
use crate::org::odata::url_encode;

/// The version of the cache file's shape.
const FORMAT: u32 = 1;

/// Where the metadata of `connection` is cached, given the state store's path (the file
/// `state:` names): `<its directory>/metadata/<connection>.json`.
pub fn metadata_cache_path(state_store: &Path, connection: &str) -> PathBuf {
    state_store
        .parent()
        .unwrap_or(Path::new(""))
        .join("metadata")
        .join(format!("{connection}.json"))
}

/// The cache file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataCache {
    pub format: u32,
    pub connection: String,
    pub url: String,
    /// RFC 3339.
    pub pulled_at: String,
    pub entities: Catalogue,
}

/// Reads the cache of `url`; `Ok(None)` when there is no file or it was pulled from another
/// environment.
pub fn read_cache(path: &Path, url: &str) -> Result<Option<Catalogue>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let cache: MetadataCache = serde_json::from_str(&text).map_err(|error| {
        format!(
            "{}: not a metadata cache ({error}); delete it or run `fetchflow metadata pull`",
            path.display()
        )
    })?;
    if cache.format != FORMAT || cache.url.trim_end_matches('/') != url.trim_end_matches('/') {
        return Ok(None);
    }
    Ok(Some(cache.entities))
}

/// Writes the cache atomically (a temporary file renamed over the old one).
pub fn write_cache(
    path: &Path,
    connection: &str,
    url: &str,
    catalogue: &Catalogue,
) -> Result<(), String> {
    let cache = MetadataCache {
        format: FORMAT,
        connection: connection.to_string(),
        url: url.trim_end_matches('/').to_string(),
        pulled_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        entities: catalogue.clone(),
    };
    let text = serde_json::to_string_pretty(&cache)
        .map_err(|error| format!("cannot serialize the metadata: {error}"))?;
    if let Some(directory) = path.parent()
        && !directory.as_os_str().is_empty()
    {
        std::fs::create_dir_all(directory)
            .map_err(|error| format!("{}: {error}", directory.display()))?;
    }
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)
        .map_err(|error| format!("{}: {error}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|error| format!("{}: {error}", path.display()))
}

/// `GET` a metadata path and its JSON `value` array.
async fn get_values(
    transport: &Transport,
    path: &str,
    query: &str,
) -> Result<Vec<Value>, OrgError> {
    let request: Request = transport.request(Method::GET, path, query);
    let answer = transport.send_retrying(&request, SETUP_TRIES).await?;
    if !answer.is_success() {
        return Err(answer_error(
            &transport.connection,
            &request.describe,
            answer.status,
            &answer.body,
        ));
    }
    let json: Value = serde_json::from_slice(&answer.body).map_err(|error| {
        let mut failed = org_error(
            &transport.connection,
            &request.describe,
            "InvalidOrgResponse",
            0,
            format!("the response is not JSON (truncated?): {error}"),
        );
        failed.retryable = true;
        failed
    })?;
    match json.get("value") {
        Some(Value::Array(values)) => Ok(values.clone()),
        _ => Err(org_error(
            &transport.connection,
            &request.describe,
            "InvalidOrgResponse",
            0,
            "the response has no `value` array",
        )),
    }
}

/// Pulls every table of the environment, at the pace of the connection's budget.
pub(crate) async fn pull(transport: Arc<Transport>) -> Result<Catalogue, OrgError> {
    let tables = get_values(
        &transport,
        "EntityDefinitions",
        "$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute",
    )
    .await?;
    let mut tasks = tokio::task::JoinSet::new();
    for table in tables {
        let (Some(logical), Some(set), Some(primary_id)) = (
            table.get("LogicalName").and_then(Value::as_str),
            table.get("EntitySetName").and_then(Value::as_str),
            table.get("PrimaryIdAttribute").and_then(Value::as_str),
        ) else {
            // Tables without an entity set (intersect and internal tables) cannot be queried
            // through the Web API.
            continue;
        };
        let primary_name = table
            .get("PrimaryNameAttribute")
            .and_then(Value::as_str)
            .unwrap_or("");
        let entity = EntityMeta::new(logical, set, primary_id, primary_name);
        let transport = transport.clone();
        tasks.spawn(async move { pull_attributes(&transport, entity).await });
    }
    let mut catalogue = Catalogue::new();
    while let Some(joined) = tasks.join_next().await {
        let entity = joined.map_err(|error| {
            org_error(
                &transport.connection,
                "GET EntityDefinitions",
                "InvalidOrgResponse",
                0,
                format!("a metadata task failed: {error}"),
            )
        })??;
        catalogue.add_entity(entity);
    }
    mark_hierarchies(&mut catalogue);
    Ok(catalogue)
}

/// The hierarchical lookups (`under`, `above`) of the standard tables, as the built-in
/// catalogue knows them: the attribute metadata does not say which self-referencing lookup is
/// the hierarchy (its relationship's `IsHierarchical` does), and the standard ones are fixed.
fn mark_hierarchies(catalogue: &mut Catalogue) {
    for builtin in Catalogue::builtin().entities() {
        let Some(hierarchy) = builtin.hierarchy_attribute() else {
            continue;
        };
        if let Some(attribute) = catalogue
            .entity_mut(&builtin.logical_name)
            .and_then(|entity| entity.attribute_mut(&hierarchy.logical_name))
            && attribute.targets.contains(&builtin.logical_name)
        {
            attribute.hierarchical = true;
        }
    }
}

async fn pull_attributes(
    transport: &Transport,
    mut entity: EntityMeta,
) -> Result<EntityMeta, OrgError> {
    let base = format!(
        "EntityDefinitions(LogicalName='{}')/Attributes",
        url_encode(&entity.logical_name)
    );
    let attributes = get_values(
        transport,
        &base,
        "$select=LogicalName,AttributeType,AttributeTypeName,IsValidForCreate,IsValidForUpdate,AttributeOf",
    )
    .await?;
    let mut kinds = Vec::new();
    for attribute in &attributes {
        let Some(name) = attribute.get("LogicalName").and_then(Value::as_str) else {
            continue;
        };
        if attribute.get("AttributeOf").is_some_and(|of| !of.is_null()) {
            // Companion columns (`owneridname`, ...) are not columns one reads or writes.
            continue;
        }
        let type_name = attribute
            .get("AttributeTypeName")
            .and_then(|name| name.get("Value"))
            .and_then(Value::as_str);
        let Some(kind) = attribute
            .get("AttributeType")
            .and_then(Value::as_str)
            .and_then(|kind| attribute_type(kind, type_name))
        else {
            continue;
        };
        let mut meta = AttributeMeta::new(name, kind);
        meta.valid_for_create = attribute
            .get("IsValidForCreate")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        meta.valid_for_update = attribute
            .get("IsValidForUpdate")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if name == entity.primary_id {
            meta.kind = AttributeType::Uniqueidentifier;
            meta.valid_for_update = false;
        }
        kinds.push(kind);
        entity.add_attribute(meta);
    }
    if kinds.iter().any(|kind| kind.is_lookup()) {
        let cast = format!("{base}/Microsoft.Dynamics.CRM.LookupAttributeMetadata");
        for lookup in get_values(transport, &cast, "$select=LogicalName,Targets").await? {
            let Some(name) = lookup.get("LogicalName").and_then(Value::as_str) else {
                continue;
            };
            let targets: Vec<&str> = lookup
                .get("Targets")
                .and_then(Value::as_array)
                .map(|targets| targets.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(attribute) = entity.attribute_mut(name) {
                attribute.targets = targets.into_iter().map(str::to_string).collect();
            }
        }
    }
    for (kind, cast) in [
        (AttributeType::Picklist, "PicklistAttributeMetadata"),
        (
            AttributeType::MultiSelectPicklist,
            "MultiSelectPicklistAttributeMetadata",
        ),
    ] {
        if !kinds.contains(&kind) {
            continue;
        }
        let path = format!("{base}/Microsoft.Dynamics.CRM.{cast}");
        for picklist in
            get_values(transport, &path, "$select=LogicalName&$expand=OptionSet").await?
        {
            let Some(name) = picklist.get("LogicalName").and_then(Value::as_str) else {
                continue;
            };
            let options = options_of(&picklist)
                .into_iter()
                .map(|(value, label, _)| OptionMeta::new(value, label))
                .collect();
            if let Some(attribute) = entity.attribute_mut(name) {
                attribute.options = options;
            }
        }
    }
    if kinds.contains(&AttributeType::State) && kinds.contains(&AttributeType::Status) {
        let state_path = format!("{base}/Microsoft.Dynamics.CRM.StateAttributeMetadata");
        let status_path = format!("{base}/Microsoft.Dynamics.CRM.StatusAttributeMetadata");
        let states = get_values(
            transport,
            &state_path,
            "$select=LogicalName&$expand=OptionSet",
        )
        .await?;
        let statuses = get_values(
            transport,
            &status_path,
            "$select=LogicalName&$expand=OptionSet",
        )
        .await?;
        let state_options = states.first().map(options_of).unwrap_or_default();
        let status_options = statuses.first().map(options_of).unwrap_or_default();
        let model = state_options
            .into_iter()
            .map(|(value, label, default_status)| {
                let mut statuses: Vec<OptionMeta> = status_options
                    .iter()
                    .filter(|(_, _, state)| *state == Some(value))
                    .map(|(status, label, _)| OptionMeta::new(*status, label.clone()))
                    .collect();
                // Our model's default status is the first one.
                if let Some(default) = default_status
                    && let Some(position) = statuses.iter().position(|s| s.value == default)
                {
                    let default = statuses.remove(position);
                    statuses.insert(0, default);
                }
                StateMeta {
                    value,
                    label,
                    statuses,
                }
            })
            .collect::<Vec<_>>();
        if !model.is_empty() {
            // `set_states` derives the statecode/statuscode columns' options and rules.
            entity.set_states(model);
        }
    }
    Ok(entity)
}

/// The options of an attribute's `OptionSet`: value, label, and `State` (status options) or
/// `DefaultStatus` (state options).
fn options_of(attribute: &Value) -> Vec<(i32, String, Option<i32>)> {
    let Some(options) = attribute
        .get("OptionSet")
        .and_then(|set| set.get("Options"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    options
        .iter()
        .filter_map(|option| {
            let value = i32::try_from(option.get("Value")?.as_i64()?).ok()?;
            let label = option
                .get("Label")
                .and_then(|label| {
                    label
                        .get("UserLocalizedLabel")
                        .and_then(|user| user.get("Label"))
                        .or_else(|| {
                            label
                                .get("LocalizedLabels")
                                .and_then(|labels| labels.get(0))
                                .and_then(|first| first.get("Label"))
                        })
                })
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let related = option
                .get("State")
                .or_else(|| option.get("DefaultStatus"))
                .and_then(Value::as_i64)
                .and_then(|related| i32::try_from(related).ok());
            Some((value, label, related))
        })
        .collect()
}

/// Our type of a Dataverse `AttributeType`; `None` for types a workflow cannot use.
fn attribute_type(kind: &str, type_name: Option<&str>) -> Option<AttributeType> {
    Some(match kind {
        "String" => AttributeType::String,
        "Memo" => AttributeType::Memo,
        "Integer" => AttributeType::Integer,
        "BigInt" => AttributeType::BigInt,
        "Decimal" => AttributeType::Decimal,
        "Double" => AttributeType::Double,
        "Money" => AttributeType::Money,
        "Boolean" => AttributeType::Boolean,
        "DateTime" => AttributeType::DateTime,
        "Uniqueidentifier" => AttributeType::Uniqueidentifier,
        "Lookup" => AttributeType::Lookup,
        "Owner" => AttributeType::Owner,
        "Customer" => AttributeType::Customer,
        "Picklist" => AttributeType::Picklist,
        "State" => AttributeType::State,
        "Status" => AttributeType::Status,
        "MultiSelectPicklist" => AttributeType::MultiSelectPicklist,
        "Virtual" if type_name == Some("MultiSelectPicklistType") => {
            AttributeType::MultiSelectPicklist
        }
        _ => return None,
    })
}
