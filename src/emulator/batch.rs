//! `POST /api/data/v9.2/$batch` (reference §3.3): a `multipart/mixed` body of
//! `application/http` requests and change sets (nested `multipart/mixed`), answered as
//! `multipart/mixed` with a `batchresponse_<guid>` boundary, change sets as
//! `changesetresponse_<guid>`, each part with its own status line and `Content-ID`.
//!
//! - The whole body is parsed before anything runs: a truncated or malformed body is a 400
//!   and writes nothing. At most 1,000 requests; no nested `$batch`; no `GET` in a change set;
//!   URLs of at most 64 KB (32 KB outside a batch).
//! - A change set is atomic: its requests run under the write gate with one journal; the
//!   first failure restores every row they touched and the change set answers with that one
//!   error response.
//! - `$n` (the `Content-ID` of an earlier request of the same change set) in a URL or as an
//!   `@odata.bind`/`@odata.id` value means that request's created row.
//! - Without `Prefer: odata.continue-on-error` processing stops at the first failed request
//!   or change set (its error is the last part); with it every part runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::emulator::entities::dispatch;
use crate::emulator::error::DvError;
use crate::emulator::journal::Journal;
use crate::emulator::request::{Call, parse_query};
use crate::emulator::{Emulator, blocking};
use crate::org::odata::{API_PATH, url_decode};

/// Dataverse's limit on requests in one batch.
const MAX_REQUESTS: usize = 1000;

/// The longest URL of a request inside a batch (reference §2.1: 64 KB).
pub(crate) const MAX_URL_LENGTH: usize = 65_536;

/// One request of the batch.
#[derive(Debug)]
struct Part {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    content_id: Option<String>,
}

#[derive(Debug)]
enum Item {
    Request(Part),
    ChangeSet(Vec<Part>),
}

pub(crate) async fn execute(emulator: &Emulator, call: Call) -> Result<Response, DvError> {
    let content_type = call.header("content-type").unwrap_or_default().to_owned();
    let boundary = boundary_of(&content_type).ok_or_else(|| {
        DvError::bad_payload(format!(
            "A $batch request must be multipart/mixed with a boundary, found Content-Type \
             `{content_type}`"
        ))
    })?;
    let items = parse_batch(&call.body, &boundary)?;
    let prefer = call.prefer();
    let response_boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    for item in items {
        let failed = match item {
            Item::Request(part) => {
                let response = run_part(emulator, &call, part, None, &HashMap::new()).await;
                let failed = response.status.is_client_error() || response.status.is_server_error();
                write_part(&mut out, &response_boundary, &response);
                failed
            }
            Item::ChangeSet(parts) => {
                run_change_set(emulator, &call, parts, &response_boundary, &mut out).await?
            }
        };
        if failed && !prefer.continue_on_error {
            break;
        }
    }
    out.push_str(&format!("--{response_boundary}--\r\n"));
    let mut response = Response::new(Body::from(out));
    if let Ok(value) =
        HeaderValue::from_str(&format!("multipart/mixed; boundary={response_boundary}"))
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if prefer.continue_on_error {
        response.headers_mut().insert(
            "Preference-Applied",
            HeaderValue::from_static("odata.continue-on-error"),
        );
    }
    Ok(response)
}

/// Runs a change set atomically; returns whether it failed.
async fn run_change_set(
    emulator: &Emulator,
    call: &Call,
    parts: Vec<Part>,
    boundary: &str,
    out: &mut String,
) -> Result<bool, DvError> {
    let gate = emulator.write_gate.lock().await;
    let journal = Arc::new(Mutex::new(Journal::default()));
    let mut created: HashMap<String, String> = HashMap::new();
    let mut responses = Vec::with_capacity(parts.len());
    let mut failure = None;
    for part in parts {
        let content_id = part.content_id.clone();
        let response = run_part(emulator, call, part, Some(journal.clone()), &created).await;
        if response.status.is_client_error() || response.status.is_server_error() {
            failure = Some(response);
            break;
        }
        if let (Some(id), Some(url)) = (content_id, response.header("odata-entityid")) {
            created.insert(id, url.to_owned());
        }
        responses.push(response);
    }
    if let Some(error) = failure {
        let org = emulator.org.clone();
        blocking(move || {
            let mut journal = journal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            journal.restore(&org)
        })
        .await?;
        drop(gate);
        write_part(out, boundary, &error);
        return Ok(true);
    }
    drop(gate);
    let change_boundary = format!("changesetresponse_{}", uuid::Uuid::new_v4());
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: multipart/mixed; boundary={change_boundary}\r\n\r\n"
    ));
    for response in &responses {
        write_part(out, &change_boundary, response);
    }
    out.push_str(&format!("--{change_boundary}--\r\n"));
    Ok(false)
}

/// An answered part: status, headers, body and its `Content-ID`.
struct PartResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    content_id: Option<String>,
}

impl PartResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

async fn run_part(
    emulator: &Emulator,
    outer: &Call,
    part: Part,
    journal: Option<crate::emulator::journal::Shared>,
    created: &HashMap<String, String>,
) -> PartResponse {
    let content_id = part.content_id.clone();
    if part.url.len() > MAX_URL_LENGTH {
        let error = DvError::new(
            StatusCode::URI_TOO_LONG,
            crate::org::odata::INVALID_ARGUMENT,
            format!(
                "The URL of a request inside the batch is {} characters long; at most \
                 {MAX_URL_LENGTH} are allowed.",
                part.url.len()
            ),
        );
        return collect(error.into_response(), content_id).await;
    }
    let url = resolve_reference(&part.url, created);
    let (path, query) = match relative_path(&url) {
        Ok(parts) => parts,
        Err(error) => {
            return collect(error.into_response(), content_id).await;
        }
    };
    let body = if created.is_empty() {
        part.body
    } else {
        replace_references(part.body, created)
    };
    let mut headers = part.headers;
    // The inner request is authenticated and addressed as the batch is.
    for name in [header::HOST, header::AUTHORIZATION] {
        if let Some(value) = outer.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let call = Call {
        method: part.method,
        path,
        query: parse_query(&query),
        headers,
        body,
        base: outer.base.clone(),
        journal,
    };
    if call.path.trim_matches('/') == "$batch" {
        let error = DvError::bad_payload("A batch request can't contain other batch requests.");
        return collect(error.into_response(), content_id).await;
    }
    let response = Box::pin(dispatch(emulator, call)).await;
    collect(response, content_id).await
}

async fn collect(response: Response, content_id: Option<String>) -> PartResponse {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    PartResponse {
        status: parts.status,
        headers: parts.headers,
        body,
        content_id,
    }
}

/// `$1` or `$1/…` → the created row's URL.
fn resolve_reference(url: &str, created: &HashMap<String, String>) -> String {
    if let Some(reference) = url.strip_prefix('$') {
        let (id, rest) = reference
            .split_once('/')
            .map_or((reference, ""), |(id, rest)| (id, rest));
        if let Some(target) = created.get(id) {
            return if rest.is_empty() {
                target.clone()
            } else {
                format!("{target}/{rest}")
            };
        }
    }
    url.to_owned()
}

/// String values `$n` in a JSON body → the created row's path (`/accounts(<id>)`).
fn replace_references(body: Bytes, created: &HashMap<String, String>) -> Bytes {
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    fn walk(value: &mut Value, created: &HashMap<String, String>) {
        match value {
            Value::String(text) => {
                if let Some(target) = text.strip_prefix('$').and_then(|id| created.get(id)) {
                    let path = target
                        .split_once(API_PATH)
                        .map_or(target.as_str(), |(_, path)| path);
                    *text = format!("/{path}");
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, created)),
            Value::Object(map) => map.values_mut().for_each(|item| walk(item, created)),
            _ => {}
        }
    }
    walk(&mut value, created);
    Bytes::from(value.to_string())
}

/// The path below `/api/data/v9.2/` and the raw query of an absolute, rooted or relative URL.
fn relative_path(url: &str) -> Result<(String, String), DvError> {
    let without_origin = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => url,
    };
    let (path, query) = without_origin
        .split_once('?')
        .unwrap_or((without_origin, ""));
    let path = match path.find(API_PATH) {
        Some(at) => &path[at + API_PATH.len()..],
        None if path.starts_with('/') => {
            return Err(DvError::not_found_segment(path.trim_start_matches('/')));
        }
        None => path,
    };
    let decoded = url_decode(path).unwrap_or_else(|| path.to_owned());
    Ok((decoded, query.to_owned()))
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("")
}

fn write_part(out: &mut String, boundary: &str, response: &PartResponse) {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = &response.content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {}\r\n",
        response.status.as_u16(),
        reason(response.status)
    ));
    let mut has_version = false;
    for (name, value) in &response.headers {
        if name == header::CONTENT_LENGTH {
            continue;
        }
        has_version |= name.as_str().eq_ignore_ascii_case("odata-version");
        if let Ok(value) = value.to_str() {
            out.push_str(&format!("{}: {value}\r\n", canonical(name)));
        }
    }
    if !has_version {
        out.push_str("OData-Version: 4.0\r\n");
    }
    if let Some(url) = response.header("odata-entityid")
        && response.header("location").is_none()
    {
        out.push_str(&format!("Location: {url}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&String::from_utf8_lossy(&response.body));
    out.push_str("\r\n");
}

/// `odata-entityid` → `OData-EntityId`, `content-type` → `Content-Type`.
fn canonical(name: &HeaderName) -> String {
    match name.as_str() {
        "odata-entityid" => "OData-EntityId".to_owned(),
        "odata-version" => "OData-Version".to_owned(),
        other => other
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// The `boundary` parameter of a multipart Content-Type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut pieces = content_type.split(';');
    let media = pieces.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    pieces.find_map(|piece| {
        let (key, value) = piece.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|boundary| !boundary.is_empty())
    })
}

fn truncated(detail: &str) -> DvError {
    DvError::bad_payload(format!("The batch request body is malformed: {detail}"))
}

/// The parts between `--boundary` lines, which must end with `--boundary--`.
fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, DvError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(found) = find(&body[from..], delimiter) {
        let at = from + found;
        if at == 0 || body[at - 1] == b'\n' {
            starts.push(at);
        }
        from = at + delimiter.len();
    }
    if starts.is_empty() {
        return Err(truncated(&format!("no `--{boundary}` delimiter")));
    }
    let mut parts = Vec::new();
    for (index, &at) in starts.iter().enumerate() {
        let after = at + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let line_end = find(&body[after..], b"\n")
            .ok_or_else(|| truncated("a delimiter line does not end"))?;
        let content_start = after + line_end + 1;
        let Some(&next) = starts.get(index + 1) else {
            return Err(truncated(&format!(
                "it ends without the closing `--{boundary}--`"
            )));
        };
        let mut content_end = next;
        if content_end > content_start && body[content_end - 1] == b'\n' {
            content_end -= 1;
        }
        if content_end > content_start && body[content_end - 1] == b'\r' {
            content_end -= 1;
        }
        parts.push(&body[content_start..content_end.max(content_start)]);
    }
    Err(truncated(&format!(
        "it ends without the closing `--{boundary}--`"
    )))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Headers and the rest after the first blank line (CRLF or LF line ends).
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = find(bytes, b"\r\n\r\n").map(|at| (at, 4));
    let lf = find(bytes, b"\n\n").map(|at| (at, 2));
    let (at, length) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => {
            // Headers with no body and no blank line (a GET at the very end of a part).
            return Some((bytes, &[]));
        }
    };
    Some((&bytes[..at], &bytes[at + length..]))
}

fn parse_headers(head: &str) -> Result<HeaderMap, DvError> {
    let mut headers = HeaderMap::new();
    for line in head
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| truncated(&format!("`{line}` is not a header")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| truncated(&format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| truncated(&format!("the value of {name} is not a header value")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn parse_batch(body: &[u8], boundary: &str) -> Result<Vec<Item>, DvError> {
    let mut items = Vec::new();
    let mut count = 0;
    for part in split_parts(body, boundary)? {
        let (head, content) = split_head(part).ok_or_else(|| truncated("a part has no headers"))?;
        let mime = parse_headers(&String::from_utf8_lossy(head))?;
        let content_type = mime
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if let Some(change_boundary) = boundary_of(content_type) {
            let mut requests = Vec::new();
            for inner in split_parts(content, &change_boundary)? {
                let (head, content) =
                    split_head(inner).ok_or_else(|| truncated("a part has no headers"))?;
                let mime = parse_headers(&String::from_utf8_lossy(head))?;
                if mime
                    .get(header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(boundary_of)
                    .is_some()
                {
                    return Err(truncated("change sets cannot be nested"));
                }
                let request = parse_request(&mime, content)?;
                if request.method == Method::GET {
                    return Err(DvError::bad_payload(
                        "GET requests must not be inside a change set.",
                    ));
                }
                requests.push(request);
            }
            count += requests.len();
            items.push(Item::ChangeSet(requests));
        } else {
            count += 1;
            items.push(Item::Request(parse_request(&mime, content)?));
        }
        if count > MAX_REQUESTS {
            return Err(DvError::bad_payload(format!(
                "The batch has more than {MAX_REQUESTS} requests; a batch request can contain \
                 up to {MAX_REQUESTS} individual requests."
            )));
        }
    }
    Ok(items)
}

/// An `application/http` part: request line, headers, blank line, body.
fn parse_request(mime: &HeaderMap, content: &[u8]) -> Result<Part, DvError> {
    let (head, body) =
        split_head(content).ok_or_else(|| truncated("a request has no request line"))?;
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let request_line = lines
        .by_ref()
        .find(|line| !line.trim().is_empty())
        .ok_or_else(|| truncated("a request has no request line"))?;
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(truncated(&format!(
            "`{request_line}` is not a request line (METHOD URL HTTP/1.1)"
        )));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| truncated(&format!("`{method}` is not an HTTP method")))?;
    let headers = parse_headers(&lines.collect::<Vec<_>>().join("\n"))?;
    let content_id = mime
        .get("content-id")
        .or_else(|| headers.get("content-id"))
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok(Part {
        method,
        url: url.to_owned(),
        headers,
        body: Bytes::copy_from_slice(body),
        content_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let body = "--batch_AAA123\r\n\
            Content-Type: multipart/mixed;boundary=changeset_BBB456\r\n\r\n\
            --changeset_BBB456\r\n\
            Content-Type: application/http\r\n\
            Content-Transfer-Encoding:binary\r\n\
            Content-ID: 1\r\n\r\n\
            POST https://x/api/data/v9.2/tasks HTTP/1.1\r\n\
            Content-Type: application/json;type=entry\r\n\r\n\
            {\"subject\":\"Task 1\"}\r\n\
            --changeset_BBB456--\r\n\
            --batch_AAA123\r\n\
            Content-Type: application/http\r\n\
            Content-Transfer-Encoding:binary\r\n\r\n\
            GET https://x/api/data/v9.2/tasks?$select=subject HTTP/1.1\r\n\
            Accept: application/json\r\n\r\n\
            --batch_AAA123--\r\n";
        let items = parse_batch(body.as_bytes(), "batch_AAA123").unwrap();
        assert_eq!(items.len(), 2);
        let Item::ChangeSet(parts) = &items[0] else {
            panic!("expected a change set")
        };
        assert_eq!(parts[0].method, Method::POST);
        assert_eq!(parts[0].content_id.as_deref(), Some("1"));
        assert_eq!(&parts[0].body[..], b"{\"subject\":\"Task 1\"}");
        let Item::Request(get) = &items[1] else {
            panic!("expected a request")
        };
        assert_eq!(get.method, Method::GET);
        assert_eq!(
            relative_path(&get.url).unwrap(),
            ("tasks".to_owned(), "$select=subject".to_owned())
        );
    }

    #[test]
    fn truncated_and_malformed_bodies_are_refused() {
        let complete = "--b\r\nContent-Type: application/http\r\n\r\nGET accounts HTTP/1.1\r\n\r\n\r\n--b--\r\n";
        assert!(parse_batch(complete.as_bytes(), "b").is_ok());
        for bad in [
            &complete[..complete.len() - 8],
            "no delimiter at all",
            "--b\r\nContent-Type: application/http\r\n\r\nNOTAREQUEST\r\n--b--\r\n",
            "--b\r\nContent-Type: multipart/mixed;boundary=c\r\n\r\n--c\r\nContent-Type: application/http\r\n\r\nGET accounts HTTP/1.1\r\n\r\n--c--\r\n--b--\r\n",
        ] {
            let error = parse_batch(bad.as_bytes(), "b").unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(
            boundary_of("multipart/mixed; boundary=\"batch_1\"").as_deref(),
            Some("batch_1")
        );
        assert_eq!(boundary_of("application/json"), None);
    }
}
