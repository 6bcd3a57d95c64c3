//! The Web API dispatcher (`dispatch`: every path below `/api/data/v9.2/`, for top-level
//! requests and `$batch` parts alike) and the entity-set operations: `WhoAmI`, `GET
//! <set>?fetchXml=` with the paging annotations, `GET <set>(<id>)?$select=`, `POST` (create),
//! `PATCH` (update or upsert), `DELETE`, and `Create/Update/UpsertMultiple`.
//!
//! A `PATCH` body may set columns, the owner (`ownerid@odata.bind`) and the state
//! (`statecode`/`statuscode`) together; the local org takes these as separate writes (update,
//! assign, set state), applied as one unit.

use std::collections::HashSet;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value, json};

use crate::emulator::error::DvError;
use crate::emulator::request::Call;
use crate::emulator::{Emulator, background, batch, blocking, metadata};
use crate::metadata::{AttributeType, EntityMeta};
use crate::org::local::{LOCAL_APIS, LocalOrg, quote, target_column};
use crate::org::odata::{
    self, DUPLICATE_RECORD, MORE_RECORDS, PAGING_COOKIE, PROPERTY_NOT_FOUND, TOTAL_RECORD_COUNT,
    TOTAL_RECORD_COUNT_LIMIT_EXCEEDED, normalize_guid, xml_escape,
};
use crate::org::{OwnerRef, PageRequest, Row, Write};

/// Answers one Web API request; errors become Dataverse error responses.
pub(crate) async fn dispatch(emulator: &Emulator, call: Call) -> Response {
    match route(emulator, call).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(emulator: &Emulator, call: Call) -> Result<Response, DvError> {
    let path = call.path.trim_matches('/').to_owned();
    let (head, rest) = match path.split_once('/') {
        Some((head, rest)) => (head.to_owned(), Some(rest.to_owned())),
        None => (path.clone(), None),
    };
    let (name, key) = split_key(&head)?;
    match name {
        "" => return only(&call, &Method::GET, &path).map(|()| service_document(emulator, &call)),
        "WhoAmI" => {
            only(&call, &Method::GET, &path)?;
            return Ok(who_am_i(emulator, &call));
        }
        "$batch" => {
            only(&call, &Method::POST, &path)?;
            return batch::execute(emulator, call).await;
        }
        "EntityDefinitions" => return metadata::handle(emulator, &call, key, rest.as_deref()),
        "backgroundoperations" => return background::table(emulator, &call, key).await,
        "sdkmessagefilters" => {
            only(&call, &Method::GET, &path)?;
            return Ok(sdk_message_filters(emulator, &call));
        }
        _ => {}
    }
    let api = name.strip_prefix("Microsoft.Dynamics.CRM.").unwrap_or(name);
    if key.is_none()
        && rest.is_none()
        && let Some((api, _)) = LOCAL_APIS.iter().find(|(known, _)| *known == api)
    {
        only(&call, &Method::POST, &path)?;
        return background::custom_api(emulator, call, api).await;
    }
    let Some(entity) = emulator.org.catalogue().entity_by_set_name(name).cloned() else {
        return Err(DvError::not_found_segment(name));
    };
    match (key, rest.as_deref()) {
        (None, None) => match call.method {
            Method::GET => list(emulator, &call, &entity).await,
            Method::POST => create(emulator, &call, &entity).await,
            _ => Err(DvError::method_not_allowed(call.method.as_str(), &path)),
        },
        (None, Some(action)) => {
            only(&call, &Method::POST, &path)?;
            let action = action
                .strip_prefix("Microsoft.Dynamics.CRM.")
                .unwrap_or(action);
            let kind = match action {
                "CreateMultiple" => Bulk::Create,
                "UpdateMultiple" => Bulk::Update,
                "UpsertMultiple" => Bulk::Upsert,
                other => return Err(DvError::not_found_segment(other)),
            };
            multiple(emulator, &call, &entity, kind).await
        }
        (Some(key), None) => {
            let id = parse_id(key)?;
            match call.method {
                Method::GET => retrieve(emulator, &call, &entity, &id).await,
                Method::PATCH => upsert(emulator, &call, &entity, &id).await,
                Method::DELETE => delete(emulator, &call, &entity, &id).await,
                _ => Err(DvError::method_not_allowed(call.method.as_str(), &path)),
            }
        }
        (Some(_), Some(property)) => Err(DvError::not_found_segment(property)),
    }
}

/// `accounts(<id>)` → ("accounts", Some("<id>")); `accounts` → ("accounts", None).
pub(crate) fn split_key(segment: &str) -> Result<(&str, Option<&str>), DvError> {
    match segment.split_once('(') {
        Some((name, key)) => {
            let key = key.strip_suffix(')').ok_or_else(|| {
                DvError::bad_request(format!("Bad Request - Error in query syntax: `{segment}`"))
            })?;
            Ok((name, Some(key)))
        }
        None => Ok((segment, None)),
    }
}

pub(crate) fn parse_id(key: &str) -> Result<String, DvError> {
    normalize_guid(key).ok_or_else(|| {
        DvError::bad_request(format!(
            "Bad Request - Error in query syntax: `{key}` is not a GUID key"
        ))
    })
}

/// Refuses other methods with 405.
pub(crate) fn only(call: &Call, method: &Method, path: &str) -> Result<(), DvError> {
    if call.method == *method {
        Ok(())
    } else {
        Err(DvError::method_not_allowed(call.method.as_str(), path))
    }
}

/// A JSON response with the OData headers.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal"),
    );
    response
}

fn service_document(emulator: &Emulator, call: &Call) -> Response {
    let sets: Vec<Value> = emulator
        .org
        .catalogue()
        .entities()
        .map(|entity| {
            json!({"name": entity.entity_set_name, "kind": "EntitySet", "url": entity.entity_set_name})
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata", call.api_url()), "value": sets}),
    )
}

fn who_am_i(emulator: &Emulator, call: &Call) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", call.api_url()),
            "BusinessUnitId": emulator.who.business_unit_id,
            "UserId": emulator.who.user_id,
            "OrganizationId": emulator.who.organization_id,
        }),
    )
}

/// Every table of the local org supports the bulk messages: a filter naming one of them and a
/// known table returns one row, as Dataverse's `sdkmessagefilters` does for supported pairs.
fn sdk_message_filters(emulator: &Emulator, call: &Call) -> Response {
    let mut literals: Vec<String> = Vec::new();
    if let Some(filter) = call.query_param("$filter") {
        literals.extend(filter.split('\'').skip(1).step_by(2).map(str::to_owned));
    }
    for (key, value) in &call.query {
        if key.starts_with('@') {
            literals.push(value.trim_matches('\'').to_owned());
        }
    }
    let message = literals.iter().find(|literal| {
        matches!(
            literal.as_str(),
            "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple"
        )
    });
    let table = literals
        .iter()
        .find(|literal| emulator.org.catalogue().entity(literal).is_some());
    let value = match (message, table) {
        (Some(message), Some(table)) => {
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{message}/{table}").as_bytes(),
            );
            vec![json!({"sdkmessagefilterid": id.to_string()})]
        }
        _ => Vec::new(),
    };
    json_response(
        StatusCode::OK,
        json!({"@odata.context": format!("{}$metadata#sdkmessagefilters(sdkmessagefilterid)", call.api_url()), "value": value}),
    )
}

/// `GET <set>?fetchXml=…` (or a plain `$select`/`$top`/`$filter` query, turned into FetchXML).
async fn list(emulator: &Emulator, call: &Call, entity: &EntityMeta) -> Result<Response, DvError> {
    let prefer = call.prefer();
    let fetchxml = match call.query_param("fetchXml") {
        Some(fetchxml) => fetchxml.to_owned(),
        None => odata_query_to_fetch(call, entity, prefer.max_page_size)?,
    };
    let (parsed, _) = crate::fetchxml::parse(&fetchxml);
    let page_number = parsed
        .as_ref()
        .and_then(|query| query.page.as_ref().map(|page| page.value))
        .unwrap_or(1)
        .max(1);
    if let Some(query) = &parsed
        && query.root_entity() != entity.logical_name
        && emulator
            .org
            .catalogue()
            .entity(query.root_entity())
            .is_some()
    {
        return Err(DvError::bad_request(format!(
            "The entity name '{}' in the FetchXml does not match the entity set '{}' ({}).",
            query.root_entity(),
            entity.entity_set_name,
            entity.logical_name
        )));
    }
    let page = emulator.query(fetchxml, PageRequest::default()).await?;
    let more_records = page.more_records;
    let cookie = page.paging_cookie.clone();
    let total = page.total_record_count;
    let exceeded = page.total_record_count_limit_exceeded;
    let org = emulator.org.clone();
    let meta = entity.clone();
    let rows = blocking(move || {
        let mut rows = page.rows;
        resolve_targets(&org, &meta, &mut rows)?;
        Ok(rows)
    })
    .await?;
    let catalogue = emulator.org.catalogue();
    let value: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut json = odata::entity_to_json(row, entity, catalogue);
            prefer.filter_annotations(&mut json);
            Value::Object(json)
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}$metadata#{}",
            call.api_url(),
            entity.entity_set_name
        )),
    );
    body.insert("value".into(), Value::Array(value));
    if more_records {
        if prefer.wants(PAGING_COOKIE)
            && let Some(cookie) = cookie
        {
            body.insert(
                PAGING_COOKIE.into(),
                Value::String(odata::paging_cookie_annotation(page_number + 1, &cookie)),
            );
        }
        if prefer.wants(MORE_RECORDS) {
            body.insert(MORE_RECORDS.into(), Value::Bool(true));
        }
    }
    if let Some(total) = total {
        body.insert("@odata.count".into(), json!(total));
        if prefer.wants(TOTAL_RECORD_COUNT) {
            body.insert(
                TOTAL_RECORD_COUNT.into(),
                json!(if exceeded { -1 } else { total }),
            );
        }
        if prefer.wants(TOTAL_RECORD_COUNT_LIMIT_EXCEEDED) {
            body.insert(TOTAL_RECORD_COUNT_LIMIT_EXCEEDED.into(), json!(exceeded));
        }
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// A plain OData query as FetchXML: `$select`, `$top`, and a `$filter` of `eq` comparisons
/// joined by `and` (all the emulator reads; anything else is refused, never ignored).
fn odata_query_to_fetch(
    call: &Call,
    entity: &EntityMeta,
    max_page_size: Option<u32>,
) -> Result<String, DvError> {
    for (key, _) in &call.query {
        if key.starts_with('$') && !matches!(key.as_str(), "$select" | "$top" | "$filter") {
            return Err(DvError::bad_request(format!(
                "The query option '{key}' is not supported by the emulator; use fetchXml."
            )));
        }
    }
    let attributes = select_attributes(call, entity)?;
    let mut conditions = String::new();
    if let Some(filter) = call.query_param("$filter") {
        for clause in filter.split(" and ") {
            let mut parts = clause.trim().splitn(3, ' ');
            let (Some(column), Some("eq"), Some(literal)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(DvError::bad_request(format!(
                    "The $filter clause `{clause}` is not supported by the emulator (only \
                     `<column> eq <value>` joined by `and`); use fetchXml."
                )));
            };
            let column = select_column(entity, column)?;
            let literal = literal.trim();
            let (operator, value) = if literal == "null" {
                ("null", String::new())
            } else {
                let value = literal
                    .strip_prefix('\'')
                    .and_then(|inner| inner.strip_suffix('\''))
                    .map_or_else(|| literal.to_owned(), |inner| inner.replace("''", "'"));
                let value = match value.as_str() {
                    "true" => "1".to_owned(),
                    "false" => "0".to_owned(),
                    _ => value,
                };
                ("eq", value)
            };
            conditions.push_str(&format!(
                "<condition attribute=\"{}\" operator=\"{operator}\" value=\"{}\"/>",
                xml_escape(&column),
                xml_escape(&value)
            ));
        }
    }
    let size = match call.query_param("$top") {
        Some(top) => format!(
            " top=\"{}\"",
            top.parse::<u32>()
                .map_err(|_| DvError::bad_request(format!(
                    "$top must be a number, found `{top}`"
                )))?
        ),
        None => format!(
            " count=\"{}\"",
            max_page_size.unwrap_or(5000).clamp(1, 5000)
        ),
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("<filter>{conditions}</filter>")
    };
    Ok(format!(
        "<fetch{size}><entity name=\"{}\">{attributes}{filter}<order attribute=\"{}\"/></entity></fetch>",
        xml_escape(&entity.logical_name),
        xml_escape(&entity.primary_id)
    ))
}

/// `<attribute …/>` elements of `$select` (`_x_value` means column `x`), or `<all-attributes/>`.
fn select_attributes(call: &Call, entity: &EntityMeta) -> Result<String, DvError> {
    let Some(select) = call
        .query_param("$select")
        .filter(|select| !select.is_empty())
    else {
        return Ok("<all-attributes/>".to_owned());
    };
    let mut attributes = String::new();
    for column in select.split(',') {
        let column = select_column(entity, column.trim())?;
        attributes.push_str(&format!("<attribute name=\"{}\"/>", xml_escape(&column)));
    }
    Ok(attributes)
}

fn select_column(entity: &EntityMeta, name: &str) -> Result<String, DvError> {
    let column = odata::lookup_column(name).unwrap_or(name);
    if entity.attribute(column).is_some() {
        Ok(column.to_owned())
    } else {
        Err(DvError::new(
            StatusCode::BAD_REQUEST,
            PROPERTY_NOT_FOUND,
            format!(
                "Could not find a property named '{name}' on type '{}'.",
                odata::odata_type(&entity.logical_name)
            ),
        ))
    }
}

/// Adds the target table to polymorphic lookups (`"<entity>:<id>"`) from their `@target`
/// companion column, so the entity gets its `lookuplogicalname`.
fn resolve_targets(org: &LocalOrg, entity: &EntityMeta, rows: &mut [Row]) -> Result<(), DvError> {
    let polymorphic: Vec<&str> = entity
        .attributes
        .iter()
        .filter(|attribute| attribute.kind.is_lookup() && attribute.targets.len() > 1)
        .map(|attribute| attribute.logical_name.as_str())
        .collect();
    if polymorphic.is_empty() || rows.is_empty() {
        return Ok(());
    }
    let connection = org.connection();
    for column in polymorphic {
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            quote(&target_column(column)),
            quote(&entity.logical_name),
            quote(&entity.primary_id)
        ))?;
        for row in rows.iter_mut() {
            let (Some(Value::String(value)), Some(Value::String(id))) =
                (row.get(column), row.get(&entity.primary_id))
            else {
                continue;
            };
            if value.contains(':') {
                continue;
            }
            let target: Option<Option<String>> =
                statement.query_row([id], |found| found.get(0)).optional()?;
            if let Some(Some(target)) = target {
                let qualified = format!("{target}:{value}");
                row.insert(column.to_owned(), Value::String(qualified));
            }
        }
    }
    Ok(())
}

/// One row by id with the `$select` columns (all when absent), targets resolved.
async fn read_row(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    id: &str,
) -> Result<Option<Row>, DvError> {
    let attributes = select_attributes(call, entity)?;
    let fetchxml = format!(
        "<fetch top=\"1\"><entity name=\"{}\">{attributes}<filter><condition attribute=\"{}\" \
         operator=\"eq\" value=\"{id}\"/></filter></entity></fetch>",
        xml_escape(&entity.logical_name),
        xml_escape(&entity.primary_id)
    );
    let page = emulator.query(fetchxml, PageRequest::default()).await?;
    let org = emulator.org.clone();
    let meta = entity.clone();
    blocking(move || {
        let mut rows = page.rows;
        resolve_targets(&org, &meta, &mut rows)?;
        Ok(rows.into_iter().next())
    })
    .await
}

/// The entity JSON of one row with its `@odata.context`.
fn entity_body(call: &Call, emulator: &Emulator, entity: &EntityMeta, row: &Row) -> Value {
    let mut json = odata::entity_to_json(row, entity, emulator.org.catalogue());
    call.prefer().filter_annotations(&mut json);
    let select = call
        .query_param("$select")
        .map(|select| format!("({select})"))
        .unwrap_or_default();
    json.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}$metadata#{}{select}/$entity",
            call.api_url(),
            entity.entity_set_name
        )),
    );
    Value::Object(json)
}

async fn retrieve(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    id: &str,
) -> Result<Response, DvError> {
    if call.query_param("$expand").is_some() {
        return Err(DvError::bad_request(
            "$expand on a single row is not supported by the emulator.",
        ));
    }
    let row = read_row(emulator, call, entity, id)
        .await?
        .ok_or_else(|| DvError::does_not_exist(&entity.logical_name, id))?;
    Ok(json_response(
        StatusCode::OK,
        entity_body(call, emulator, entity, &row),
    ))
}

/// The id of a new row: the primary key in the body, else a new GUID.
fn take_id(entity: &EntityMeta, values: &mut Row) -> Result<Option<String>, DvError> {
    match values.remove(&entity.primary_id) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => normalize_guid(&text).map(Some).ok_or_else(|| {
            DvError::bad_request(format!("{}: `{text}` is not a GUID", entity.primary_id))
        }),
        Some(other) => Err(DvError::bad_request(format!(
            "{}: expected a GUID, found {other}",
            entity.primary_id
        ))),
    }
}

/// The writes that create row `id` with `values`: a create, then the state when given.
fn plan_create(entity: &EntityMeta, id: &str, mut values: Row) -> Result<Vec<Write>, DvError> {
    let state = take_state(entity, &mut values, true)?;
    let mut writes = vec![Write::Create {
        entity: entity.logical_name.clone(),
        id: id.to_owned(),
        values,
    }];
    writes.extend(state.map(|(statecode, statuscode)| Write::SetState {
        entity: entity.logical_name.clone(),
        id: id.to_owned(),
        statecode,
        statuscode,
    }));
    Ok(writes)
}

/// The writes that update row `id`: columns, then owner, then state.
fn plan_update(entity: &EntityMeta, id: &str, mut values: Row) -> Result<Vec<Write>, DvError> {
    let owner = match entity.attribute("ownerid") {
        Some(attribute) if attribute.kind == AttributeType::Owner => {
            match values.remove("ownerid") {
                None => None,
                Some(Value::String(text)) => {
                    let (owner_entity, owner_id) = text.split_once(':').ok_or_else(|| {
                        DvError::bad_request(format!("ownerid: `{text}` names no owner table"))
                    })?;
                    Some(OwnerRef {
                        entity: owner_entity.to_owned(),
                        id: owner_id.to_owned(),
                    })
                }
                Some(_) => {
                    return Err(DvError::bad_request(
                        "ownerid cannot be cleared: every row has an owner",
                    ));
                }
            }
        }
        _ => None,
    };
    let state = take_state(entity, &mut values, false)?;
    let mut writes = Vec::new();
    if !values.is_empty() || (owner.is_none() && state.is_none()) {
        writes.push(Write::Update {
            entity: entity.logical_name.clone(),
            id: id.to_owned(),
            values,
        });
    }
    if let Some(owner) = owner {
        writes.push(Write::Assign {
            entity: entity.logical_name.clone(),
            id: id.to_owned(),
            owner,
        });
    }
    if let Some((statecode, statuscode)) = state {
        writes.push(Write::SetState {
            entity: entity.logical_name.clone(),
            id: id.to_owned(),
            statecode,
            statuscode,
        });
    }
    Ok(writes)
}

/// Takes `statecode`/`statuscode` out of the values: both, or one with the other derived
/// (a state's default status; a status's state). On create a lone `statuscode` stays a column.
fn take_state(
    entity: &EntityMeta,
    values: &mut Row,
    creating: bool,
) -> Result<Option<(i32, i32)>, DvError> {
    let code = |value: &Value, name: &str| {
        value
            .as_i64()
            .and_then(|number| i32::try_from(number).ok())
            .ok_or_else(|| {
                DvError::bad_request(format!("{name}: expected an integer, found {value}"))
            })
    };
    let has_state = values
        .get("statecode")
        .is_some_and(|value| !value.is_null());
    if !has_state && (creating || !values.contains_key("statuscode")) {
        return Ok(None);
    }
    let statecode = values.remove("statecode").filter(|value| !value.is_null());
    let statuscode = values.remove("statuscode").filter(|value| !value.is_null());
    let statecode = statecode
        .map(|value| code(&value, "statecode"))
        .transpose()?;
    let statuscode = statuscode
        .map(|value| code(&value, "statuscode"))
        .transpose()?;
    let pair = match (statecode, statuscode) {
        (Some(state), Some(status)) => (state, status),
        (Some(state), None) => {
            let status = entity
                .state(state)
                .and_then(|meta| meta.default_status())
                .ok_or_else(|| {
                    DvError::bad_request(format!(
                        "{state} is not a statecode of {}",
                        entity.logical_name
                    ))
                })?;
            (state, status)
        }
        (None, Some(status)) => {
            let state = entity
                .states
                .iter()
                .find(|meta| meta.statuses.iter().any(|option| option.value == status))
                .map(|meta| meta.value)
                .ok_or_else(|| {
                    DvError::bad_request(format!(
                        "{status} is not a statuscode of {}",
                        entity.logical_name
                    ))
                })?;
            (state, status)
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(pair))
}

/// Which of `ids` exist as rows of `entity` (one trip to the blocking pool for all).
async fn existing(
    emulator: &Emulator,
    entity: &EntityMeta,
    ids: Vec<String>,
) -> Result<HashSet<String>, DvError> {
    let org = emulator.org.clone();
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} = ?1",
        quote(&entity.logical_name),
        quote(&entity.primary_id)
    );
    blocking(move || {
        let connection = org.connection();
        let mut statement = connection.prepare_cached(&sql)?;
        let mut found = HashSet::new();
        for id in ids {
            if statement
                .query_row([&id], |row| row.get::<_, i64>(0))
                .optional()?
                .is_some()
            {
                found.insert(id);
            }
        }
        Ok(found)
    })
    .await
}

fn entity_id_header(response: &mut Response, url: &str) {
    if let Ok(value) = HeaderValue::from_str(url) {
        response.headers_mut().insert("OData-EntityId", value);
    }
}

/// 204 with `OData-EntityId`, or the row (`status`) with `Prefer: return=representation`.
async fn written(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    id: &str,
    status: StatusCode,
) -> Result<Response, DvError> {
    if call.prefer().return_representation {
        let row = read_row(emulator, call, entity, id)
            .await?
            .ok_or_else(|| DvError::does_not_exist(&entity.logical_name, id))?;
        let mut response = json_response(status, entity_body(call, emulator, entity, &row));
        response.headers_mut().insert(
            "Preference-Applied",
            HeaderValue::from_static("return=representation"),
        );
        return Ok(response);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    entity_id_header(
        &mut response,
        &odata::entity_id_url(&call.base, &entity.entity_set_name, id),
    );
    Ok(response)
}

async fn create(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
) -> Result<Response, DvError> {
    let body = call.json_object()?;
    let mut values = odata::body_to_row(&body, entity, emulator.org.catalogue())?;
    let id = take_id(entity, &mut values)?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let writes = plan_create(entity, &id, values)?;
    emulator.apply(call.journal.as_ref(), writes).await?;
    written(emulator, call, entity, &id, StatusCode::CREATED).await
}

/// `PATCH <set>(<id>)`: update when the row exists, else create (upsert); `If-Match: *` makes
/// it update-only (404 when missing), `If-None-Match: *` create-only (412 when present).
async fn upsert(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    id: &str,
) -> Result<Response, DvError> {
    let body = call.json_object()?;
    let mut values = odata::body_to_row(&body, entity, emulator.org.catalogue())?;
    if let Some(Value::String(given)) = values.remove(&entity.primary_id)
        && normalize_guid(&given).as_deref() != Some(id)
    {
        return Err(DvError::bad_request(format!(
            "{} in the body ({given}) differs from the key in the URL ({id})",
            entity.primary_id
        )));
    }
    // Any If-Match (`*` or an ETag) means "update only"; ETag values are not compared, as the
    // local org keeps no row versions.
    let update_only = call.header("if-match").is_some();
    let create_only = call.header("if-none-match") == Some("*");
    let gate = emulator.gate(call.journal.as_ref()).await;
    let found = !existing(emulator, entity, vec![id.to_owned()])
        .await?
        .is_empty();
    let writes = match (found, update_only, create_only) {
        (false, true, _) => return Err(DvError::does_not_exist(&entity.logical_name, id)),
        (true, _, true) => {
            return Err(DvError::new(
                StatusCode::PRECONDITION_FAILED,
                DUPLICATE_RECORD,
                "A record with matching key values already exists.",
            ));
        }
        (true, _, _) => plan_update(entity, id, values)?,
        (false, _, _) => plan_create(entity, id, values)?,
    };
    emulator.apply_locked(call.journal.as_ref(), writes).await?;
    drop(gate);
    written(emulator, call, entity, id, StatusCode::OK).await
}

async fn delete(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    id: &str,
) -> Result<Response, DvError> {
    let write = Write::Delete {
        entity: entity.logical_name.clone(),
        id: id.to_owned(),
    };
    emulator.apply(call.journal.as_ref(), vec![write]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Create,
    Update,
    Upsert,
}

/// `POST <set>/Microsoft.Dynamics.CRM.{Create|Update|Upsert}Multiple` with `{"Targets": […]}`,
/// all or nothing, as on standard tables.
async fn multiple(
    emulator: &Emulator,
    call: &Call,
    entity: &EntityMeta,
    kind: Bulk,
) -> Result<Response, DvError> {
    let body = call.json_object()?;
    let Some(Value::Array(targets)) = body.get("Targets") else {
        return Err(DvError::bad_payload(
            "The parameter 'Targets' is required: an array of entities, each with its \
             @odata.type.",
        ));
    };
    let catalogue = emulator.org.catalogue();
    let mut planned = Vec::with_capacity(targets.len());
    for (index, target) in targets.iter().enumerate() {
        let Value::Object(target) = target else {
            return Err(DvError::bad_payload(format!(
                "Targets[{index}] is not an entity object"
            )));
        };
        let odata_type = target.get("@odata.type").and_then(Value::as_str);
        match odata_type.and_then(odata::parse_odata_type) {
            Some(name) if name == entity.logical_name => {}
            Some(name) => {
                return Err(DvError::bad_request(format!(
                    "Targets[{index}]: @odata.type {name} is not the table of {} ({})",
                    entity.entity_set_name, entity.logical_name
                )));
            }
            None => {
                return Err(DvError::bad_request(format!(
                    "Targets[{index}]: You must set the @odata.type property for each item in \
                     the Targets parameter (Microsoft.Dynamics.CRM.{}).",
                    entity.logical_name
                )));
            }
        }
        let mut values = odata::body_to_row(target, entity, catalogue)
            .map_err(|error| DvError::from(error).prefixed(&format!("Targets[{index}]: ")))?;
        let mut id = take_id(entity, &mut values)?;
        if id.is_none()
            && let Some(Value::String(reference)) = target.get("@odata.id")
        {
            id = Some(odata::parse_bind(catalogue, reference)?.1);
        }
        if id.is_none() && kind != Bulk::Create {
            return Err(DvError::bad_request(format!(
                "Targets[{index}] has no {}: UpdateMultiple and UpsertMultiple need each \
                 row's key",
                entity.primary_id
            )));
        }
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        planned.push((id, values));
    }
    let _gate = emulator.gate(call.journal.as_ref()).await;
    let present = match kind {
        Bulk::Upsert => {
            existing(
                emulator,
                entity,
                planned.iter().map(|(id, _)| id.clone()).collect(),
            )
            .await?
        }
        Bulk::Create | Bulk::Update => HashSet::new(),
    };
    let mut writes = Vec::with_capacity(planned.len());
    let mut ids = Vec::with_capacity(planned.len());
    for (id, values) in planned {
        let create = match kind {
            Bulk::Create => true,
            Bulk::Update => false,
            Bulk::Upsert => !present.contains(&id),
        };
        writes.extend(if create {
            plan_create(entity, &id, values)?
        } else {
            plan_update(entity, &id, values)?
        });
        ids.push(id);
    }
    emulator.apply_locked(call.journal.as_ref(), writes).await?;
    Ok(match kind {
        Bulk::Create => json_response(
            StatusCode::OK,
            json!({
                "@odata.context": format!("{}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", call.api_url()),
                "Ids": ids,
            }),
        ),
        Bulk::Update | Bulk::Upsert => StatusCode::NO_CONTENT.into_response(),
    })
}
