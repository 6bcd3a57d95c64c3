//! One page of a FetchXML query (reference §2): `GET <entityset>?fetchXml=<URL-encoded>` with
//! `Prefer: odata.include-annotations="*"`; the next page's `<fetch>` carries `page` and the
//! cookie of the previous page XML-encoded in `paging-cookie`. A URL over 32 KB goes inside a
//! `$batch` as a GET (the documented workaround, up to 64 KB); a longer one is refused.

use reqwest::Method;
use serde_json::Value;

use crate::org::dataverse::Inner;
use crate::org::dataverse::batch::{self, Part};
use crate::org::dataverse::encode::with_paging;
use crate::org::dataverse::errors::{answer_error, org_error, part_failure};
use crate::org::dataverse::transport::{API_PATH, Answer};
use crate::org::odata;
use crate::org::odata::url_encode;
use crate::org::{OrgError, Page, PageRequest, Row};

/// The longest URL of a plain `GET`.
pub const MAX_GET_URL: usize = 32_768;
/// The longest URL of a `GET` inside a `$batch`.
pub const MAX_BATCH_GET_URL: usize = 65_536;

pub(crate) async fn query_page(
    inner: &Inner,
    fetchxml: &str,
    request: &PageRequest,
) -> Result<Page, OrgError> {
    let transport = &inner.transport;
    let connection = &transport.connection;
    let (fetch, shape) = with_paging(
        fetchxml,
        request.page,
        request.count,
        request.paging_cookie.as_deref(),
    )
    .map_err(|message| {
        org_error(
            connection,
            "GET (FetchXML)",
            "InvalidXml",
            -2147220991,
            message,
        )
    })?;
    let entity = inner.catalogue.entity(&shape.entity).ok_or_else(|| {
        org_error(
            connection,
            "GET (FetchXML)",
            "QueryBuilderNoEntity",
            -2147217150,
            format!("`{}` is not a table of this environment", shape.entity),
        )
    })?;
    let query = format!("fetchXml={}", url_encode(&fetch));
    let mut get = transport.request(Method::GET, &entity.entity_set_name, &query);
    get.headers
        .push(("Prefer", "odata.include-annotations=\"*\"".to_string()));
    let answer = if get.url.len() <= MAX_GET_URL {
        transport.send(&get).await?
    } else if get.url.len() <= MAX_BATCH_GET_URL {
        inside_batch(inner, &entity.entity_set_name, &query, &get.describe).await?
    } else {
        return Err(org_error(
            connection,
            &get.describe,
            "InvalidArgument",
            odata::INVALID_ARGUMENT,
            format!(
                "the FetchXML makes a {} character URL; Dataverse accepts at most {MAX_BATCH_GET_URL} \
                 (inside $batch): shorten the query, e.g. fewer `in` values",
                get.url.len()
            ),
        ));
    };
    if !answer.is_success() {
        return Err(answer_error(
            connection,
            &get.describe,
            answer.status,
            &answer.body,
        ));
    }
    let invalid = |what: String| {
        let mut error = org_error(connection, &get.describe, "InvalidOrgResponse", 0, what);
        // A body cut short is worth another try; nothing was counted from it.
        error.retryable = true;
        error
    };
    let json: Value = serde_json::from_slice(&answer.body)
        .map_err(|error| invalid(format!("the response is not JSON (truncated?): {error}")))?;
    let values = json
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the response has no `value` array".to_string()))?;
    let mut rows = Vec::with_capacity(values.len());
    for value in values {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("a row of the response is not an object".to_string()))?;
        rows.push(link_columns(odata::json_to_row(object, entity)));
    }
    let more_records = json
        .get(odata::MORE_RECORDS)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let paging_cookie = match json.get(odata::PAGING_COOKIE).and_then(Value::as_str) {
        Some(annotation) => Some(
            odata::parse_paging_cookie_annotation(annotation)
                .map_err(|error| invalid(error.message))?
                .1,
        ),
        None => None,
    };
    Ok(Page {
        rows,
        more_records,
        paging_cookie,
        total_record_count: json.get(odata::TOTAL_RECORD_COUNT).and_then(Value::as_i64),
        total_record_count_limit_exceeded: json
            .get(odata::TOTAL_RECORD_COUNT_LIMIT_EXCEEDED)
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Link-entity columns as the row format keys them (`alias.column`): the Web API may spell
/// the dot as `_x002e_` in property names.
fn link_columns(row: Row) -> Row {
    if !row.keys().any(|key| key.contains("_x002e_")) {
        return row;
    }
    row.into_iter()
        .map(|(key, value)| (key.replace("_x002e_", "."), value))
        .collect()
}

/// The GET sent as the one request of a `$batch`; its answer as if sent directly.
async fn inside_batch(
    inner: &Inner,
    set: &str,
    query: &str,
    describe: &str,
) -> Result<Answer, OrgError> {
    let transport = &inner.transport;
    let part = Part {
        method: "GET",
        path: format!("{API_PATH}{set}?{query}"),
        headers: vec![("Prefer", "odata.include-annotations=\"*\"".to_string())],
        body: None,
    };
    let (content_type, body) = batch::build(std::slice::from_ref(&part));
    let mut post = transport.request(Method::POST, "$batch", "");
    post.body = Some((content_type, body));
    let sent = std::time::Instant::now();
    let answer = transport.send(&post).await?;
    if !answer.is_success() {
        return Err(answer_error(
            &transport.connection,
            describe,
            answer.status,
            &answer.body,
        ));
    }
    let content_type = answer.header("content-type").unwrap_or("").to_string();
    let mut parts = batch::parse(&content_type, &answer.body).map_err(|message| {
        let mut error = org_error(
            &transport.connection,
            describe,
            "InvalidOrgResponse",
            0,
            message,
        );
        error.retryable = true;
        error
    })?;
    if parts.len() != 1 {
        return Err(org_error(
            &transport.connection,
            describe,
            "InvalidOrgResponse",
            0,
            format!("the $batch answered {} parts for one GET", parts.len()),
        ));
    }
    let part = parts.remove(0);
    if part.status == 429 || part.status >= 500 {
        let failure = part_failure(&transport.connection, describe, &part);
        if part.status == 429
            && let Some(wait) = failure.retry_after
        {
            transport.budget.throttled(sent, wait);
        }
        return Err(failure);
    }
    Ok(Answer {
        status: part.status,
        headers: answer.headers,
        body: part.body,
    })
}
