//! Tests of the Dataverse connector against a small scripted fake of the Web API and of the
//! token endpoint (axum on 127.0.0.1:0), so that 429s, expiring tokens and truncated bodies
//! happen exactly when a test says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::*;
use crate::org::odata;
use crate::org::{ApiCall, Org, OwnerRef, PageRequest, Write};

const SECRET: &str = "s3cr3t-Value-that-must-never-show";
pub(crate) const TENANT: &str = "00000000-0000-4000-8000-0000000000aa";
pub(crate) const CLIENT: &str = "00000000-0000-4000-8000-0000000000bb";
const ID1: &str = "5e000000-0000-4000-8000-000000000001";
const ID2: &str = "5e000000-0000-4000-8000-000000000002";
const ID3: &str = "5e000000-0000-4000-8000-000000000003";
const USER: &str = "5e000000-0000-4000-8000-0000000000ee";

/// One request the fake saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// A decoded query parameter.
    fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| odata::url_decode(value).unwrap_or_default())
        })
    }
}

type Hook = Box<dyn FnMut(&Seen) -> Option<Response> + Send>;

/// The fake's knobs and what it recorded.
struct Fake {
    token_lifetime: Mutex<u64>,
    tokens: Mutex<HashMap<String, Instant>>,
    tokens_issued: AtomicUsize,
    unauthorized: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    hook: Mutex<Option<Hook>>,
    dop_hint: Mutex<Option<usize>>,
    delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    multiple_supported: Mutex<bool>,
    always_forbidden: Mutex<Option<u16>>,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            token_lifetime: Mutex::new(3600),
            tokens: Mutex::new(HashMap::new()),
            tokens_issued: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            hook: Mutex::new(None),
            dop_hint: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            multiple_supported: Mutex::new(false),
            always_forbidden: Mutex::new(None),
        })
    }

    fn hook(&self, hook: impl FnMut(&Seen) -> Option<Response> + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    fn seen(&self, path_part: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.path.contains(path_part))
            .cloned()
            .collect()
    }
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; odata.metadata=minimal")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error_response(status: u16, number: i64, message: &str) -> Response {
    json_response(status, odata::error_body(number, message))
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method,
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    if seen.path.ends_with("/oauth2/v2.0/token") {
        fake.seen.lock().unwrap().push(seen.clone());
        return token(&fake, &seen);
    }
    let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    fake.peak.fetch_max(now, Ordering::SeqCst);
    let delay = *fake.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = api(&fake, seen);
    fake.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = response;
    if let Some(hint) = *fake.dop_hint.lock().unwrap() {
        response
            .headers_mut()
            .insert("x-ms-dop-hint", hint.to_string().parse().unwrap());
    }
    response
}

fn token(fake: &Fake, seen: &Seen) -> Response {
    let form: HashMap<String, String> = seen
        .body
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_string(), odata::url_decode(value)?))
        })
        .collect();
    if form.get("client_secret").map(String::as_str) != Some(SECRET) {
        return json_response(
            401,
            json!({"error": "invalid_client", "error_description":
                   "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}),
        );
    }
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT));
    assert!(
        form["scope"].ends_with("/.default"),
        "{:?}",
        form.get("scope")
    );
    let issued = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let lifetime = *fake.token_lifetime.lock().unwrap();
    let value = format!("token-{issued}-{}", uuid::Uuid::new_v4().simple());
    fake.tokens.lock().unwrap().insert(
        value.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    json_response(
        200,
        json!({"token_type": "Bearer", "expires_in": lifetime, "access_token": value}),
    )
}

fn api(fake: &Fake, seen: Seen) -> Response {
    let authorized = seen
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| fake.tokens.lock().unwrap().get(token).copied())
        .is_some_and(|expires| Instant::now() < expires);
    fake.seen.lock().unwrap().push(seen.clone());
    if !authorized {
        fake.unauthorized.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(401)
            .header("www-authenticate", "Bearer")
            .body(Body::empty())
            .unwrap();
    }
    if let Some(status) = *fake.always_forbidden.lock().unwrap() {
        return error_response(
            status,
            -2147220960,
            "Principal user is missing prvReadaccount privilege",
        );
    }
    if let Some(hook) = fake.hook.lock().unwrap().as_mut()
        && let Some(response) = hook(&seen)
    {
        return response;
    }
    let path = seen.path.trim_start_matches("/api/data/v9.2/");
    if path == "WhoAmI" {
        return json_response(200, json!({"UserId": USER}));
    }
    if path.starts_with("EntityDefinitions") {
        return metadata(path);
    }
    if path == "sdkmessagefilters" {
        let supported = *fake.multiple_supported.lock().unwrap();
        let value = if supported {
            json!([{"sdkmessagefilterid": ID1}])
        } else {
            json!([])
        };
        return json_response(200, json!({ "value": value }));
    }
    if path.ends_with("Microsoft.Dynamics.CRM.UpdateMultiple") {
        return Response::builder().status(204).body(Body::empty()).unwrap();
    }
    if path == "$batch" {
        return batch_response(&seen);
    }
    if path == "accounts" && seen.method == Method::GET {
        return json_response(200, json!({"value": [{"accountid": ID1, "name": "A"}]}));
    }
    error_response(
        404,
        odata::RESOURCE_NOT_FOUND,
        "Resource not found for the segment",
    )
}

/// The metadata of a tiny environment: account, systemuser, team.
fn metadata(path: &str) -> Response {
    let attribute = |name: &str, kind: &str| {
        json!({"LogicalName": name, "AttributeType": kind, "IsValidForCreate": true,
               "IsValidForUpdate": true, "AttributeOf": null})
    };
    if path == "EntityDefinitions" {
        return json_response(
            200,
            json!({"value": [
                {"LogicalName": "account", "EntitySetName": "accounts",
                 "PrimaryIdAttribute": "accountid", "PrimaryNameAttribute": "name"},
                {"LogicalName": "systemuser", "EntitySetName": "systemusers",
                 "PrimaryIdAttribute": "systemuserid", "PrimaryNameAttribute": "fullname"},
                {"LogicalName": "team", "EntitySetName": "teams",
                 "PrimaryIdAttribute": "teamid", "PrimaryNameAttribute": "name"},
                {"LogicalName": "intersect", "EntitySetName": null,
                 "PrimaryIdAttribute": "intersectid", "PrimaryNameAttribute": null}
            ]}),
        );
    }
    let options = |options: Value| json!({"Options": options});
    let label = |text: &str| json!({"UserLocalizedLabel": {"Label": text}});
    if path.contains("LogicalName='account'") {
        if path.ends_with("LookupAttributeMetadata") {
            return json_response(
                200,
                json!({"value": [
                    {"LogicalName": "parentaccountid", "Targets": ["account"]},
                    {"LogicalName": "ownerid", "Targets": ["systemuser", "team"]}
                ]}),
            );
        }
        if path.ends_with("StateAttributeMetadata") {
            return json_response(
                200,
                json!({"value": [{"LogicalName": "statecode", "OptionSet": options(json!([
                    {"Value": 0, "Label": label("Active"), "DefaultStatus": 1},
                    {"Value": 1, "Label": label("Inactive"), "DefaultStatus": 2}
                ]))}]}),
            );
        }
        if path.ends_with("StatusAttributeMetadata") {
            return json_response(
                200,
                json!({"value": [{"LogicalName": "statuscode", "OptionSet": options(json!([
                    {"Value": 1, "Label": label("Active"), "State": 0},
                    {"Value": 2, "Label": label("Inactive"), "State": 1}
                ]))}]}),
            );
        }
        return json_response(
            200,
            json!({"value": [
                attribute("accountid", "Uniqueidentifier"),
                attribute("name", "String"),
                attribute("description", "Memo"),
                attribute("revenue", "Money"),
                attribute("parentaccountid", "Lookup"),
                attribute("ownerid", "Owner"),
                attribute("statecode", "State"),
                attribute("statuscode", "Status"),
                {"LogicalName": "owneridname", "AttributeType": "String", "AttributeOf": "ownerid"},
                attribute("entityimage", "Virtual")
            ]}),
        );
    }
    let (primary, name) = if path.contains("systemuser") {
        ("systemuserid", "fullname")
    } else {
        ("teamid", "name")
    };
    json_response(
        200,
        json!({"value": [attribute(primary, "Uniqueidentifier"), attribute(name, "String")]}),
    )
}

/// Answers each part of a `$batch`: DELETE of ID2 is 404, everything else 204.
fn batch_response(seen: &Seen) -> Response {
    let requests: Vec<&str> = seen
        .body
        .split("\r\n")
        .filter(|line| line.ends_with(" HTTP/1.1"))
        .collect();
    let boundary = "batchresponse_fake";
    let mut body = String::new();
    for request in requests {
        let (status, json) = if request.starts_with("DELETE") && request.contains(ID2) {
            (
                "404 Not Found",
                odata::error_body(odata::OBJECT_DOES_NOT_EXIST, "account Does Not Exist")
                    .to_string(),
            )
        } else if request.starts_with("GET") {
            (
                "200 OK",
                json!({"value": [{"accountid": ID1, "name": "long"}]}).to_string(),
            )
        } else {
            ("204 No Content", String::new())
        };
        body.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 {status}\r\nContent-Type: application/json; odata.metadata=minimal\r\nOData-Version: 4.0\r\n\r\n{json}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    Response::builder()
        .status(200)
        .header(
            "content-type",
            format!("multipart/mixed; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

/// Starts the fake; returns its base URL.
async fn start(fake: Arc<Fake>) -> String {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

fn settings(url: &str, secret_template: &str) -> DataverseSettings {
    DataverseSettings {
        url: url.to_string(),
        tenant: TENANT.to_string(),
        client_id: CLIENT.to_string(),
        client_secret: secret_template.to_string(),
        authority: url.to_string(),
    }
}

fn secrets(value: &'static str) -> Arc<dyn SecretSource> {
    Arc::new(move |name: &str| (name == "DV_SECRET").then(|| value.to_string()))
}

fn options() -> DataverseOptions {
    DataverseOptions {
        poll_interval: Duration::from_millis(20),
        max_poll_interval: Duration::from_millis(50),
        ..DataverseOptions::default()
    }
}

async fn connect(url: &str) -> DataverseOrg {
    DataverseOrg::connect_with(
        "prod",
        &settings(url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        options(),
    )
    .await
    .unwrap()
}

const FETCH: &str = r#"<fetch><entity name="account"><attribute name="name"/></entity></fetch>"#;

fn assert_secret_free(text: &str) {
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    assert!(!text.contains("token-"), "a token leaked: {text}");
}

#[tokio::test]
async fn connects_and_builds_the_catalogue_from_the_web_api_metadata() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let account = org.catalogue().entity("account").unwrap();
    assert_eq!(account.entity_set_name, "accounts");
    assert_eq!(
        account.attribute("ownerid").unwrap().targets,
        vec!["systemuser", "team"]
    );
    assert!(account.attribute("owneridname").is_none());
    assert!(account.attribute("entityimage").is_none());
    assert_eq!(account.state(1).unwrap().default_status(), Some(2));
    assert!(account.valid_status(0, 1).is_ok());
    assert!(org.catalogue().entity("intersect").is_none());
    assert_eq!(
        account
            .hierarchy_attribute()
            .map(|a| a.logical_name.as_str()),
        Some("parentaccountid")
    );
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    let debug = format!("{org:?}");
    assert_secret_free(&debug);
    let literal = settings(&url, SECRET);
    assert_secret_free(&format!("{literal:?}"));
}

#[tokio::test]
async fn the_metadata_cache_is_written_and_then_used_instead_of_pulling() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let directory = std::env::temp_dir().join(format!("ff-dv-{}", uuid::Uuid::new_v4()));
    let path = metadata_cache_path(&directory.join("state.db"), "prod");
    assert!(path.ends_with("metadata/prod.json"));
    let with_cache = DataverseOptions {
        metadata_cache: Some(path.clone()),
        ..options()
    };
    let first = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        with_cache.clone(),
    )
    .await
    .unwrap();
    let pulls = fake.seen("EntityDefinitions").len();
    assert!(pulls >= 2, "{pulls}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_secret_free(&text);
    let second = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        with_cache,
    )
    .await
    .unwrap();
    assert_eq!(
        fake.seen("EntityDefinitions").len(),
        pulls,
        "the cache was not used"
    );
    assert_eq!(first.catalogue(), second.catalogue());
    // Another environment's cache is not this one's.
    assert_eq!(
        read_cache(&path, "https://other.crm.dynamics.com").unwrap(),
        None
    );
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_error_naming_the_connection() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let error = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets("wrong-secret-xyz"),
        options(),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("connection `prod`: POST "), "{text}");
    assert!(text.contains("/oauth2/v2.0/token"), "{text}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(!text.contains("wrong-secret-xyz"), "{text}");
    assert!(!error.is_retryable());
    // A secret that is not set names the variable, not a value.
    let missing = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_OTHER') }}"),
        secrets(SECRET),
        options(),
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("DV_OTHER"), "{missing}");
    assert_secret_free(&missing.to_string());
}

#[tokio::test]
async fn an_unreachable_environment_is_a_clear_retryable_error() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    let error = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        options(),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("connection `prod`: POST "), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(error.is_retryable());
    assert_secret_free(&text);

    // Token endpoint fine, environment down.
    let fake = Fake::new();
    let authority = start(fake).await;
    let mut split = settings(&url, "{{ secret('DV_SECRET') }}");
    split.authority = authority;
    let error = DataverseOrg::connect_with("prod", &split, secrets(SECRET), options())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("connection `prod`: GET /api/data/v9.2/WhoAmI: "),
        "{text}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn forbidden_and_unauthorized_are_mapped() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    *fake.always_forbidden.lock().unwrap() = Some(403);
    let error = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        options(),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("connection `prod`: GET /api/data/v9.2/WhoAmI: 403"),
        "{text}"
    );
    assert!(text.contains("security role"), "{text}");

    // A 401 with a fresh token: one new token, then a clear error.
    *fake.always_forbidden.lock().unwrap() = None;
    let org = connect(&url).await;
    let before = fake.tokens_issued.load(Ordering::SeqCst);
    fake.hook(|_| Some(Response::builder().status(401).body(Body::empty()).unwrap()));
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code, "Unauthorized");
    assert!(!error.retryable);
    assert!(
        error
            .message
            .starts_with("connection `prod`: GET /api/data/v9.2/accounts: "),
        "{}",
        error.message
    );
    assert!(!error.message.contains("fetchXml"), "{}", error.message);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn the_token_is_fetched_once_and_refreshed_before_it_expires() {
    let fake = Fake::new();
    *fake.token_lifetime.lock().unwrap() = 2;
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    for _ in 0..5 {
        org.query_page(FETCH, &PageRequest::default())
            .await
            .unwrap();
    }
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    // Keep working across two token lifetimes: never a request with an expired token.
    let until = Instant::now() + Duration::from_millis(4_500);
    while Instant::now() < until {
        org.query_page(FETCH, &PageRequest::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fake.tokens_issued.load(Ordering::SeqCst) >= 3);
    assert_eq!(
        fake.unauthorized.load(Ordering::SeqCst),
        0,
        "a request went out with an expired token"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_after_a_401() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.tokens.lock().unwrap().clear();
    let page = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
    assert_eq!(fake.unauthorized.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_and_truncated_responses_are_errors() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.hook(|_| {
        Some(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"value": [{"accountid": "#))
                .unwrap(),
        )
    });
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code, "InvalidOrgResponse");
    assert!(error.retryable);
    assert!(
        error.message.contains("connection `prod`"),
        "{}",
        error.message
    );

    // A body shorter than its Content-Length.
    fake.hook(|_| {
        Some(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("content-length", "5000")
                .body(Body::from(r#"{"value": []}"#))
                .unwrap(),
        )
    });
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert!(error.retryable, "{error:?}");

    // A $batch answer cut short: no record is counted as written.
    fake.hook(|seen| {
        seen.path.ends_with("$batch").then(|| {
            Response::builder()
                .status(200)
                .header("content-type", "multipart/mixed; boundary=batchresponse_x")
                .body(Body::from(
                    "--batchresponse_x\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--batchresp",
                ))
                .unwrap()
        })
    });
    let deletes = [ID1, ID2].map(|id| Write::Delete {
        entity: "account".into(),
        id: id.into(),
    });
    let error = org.write_batch(&deletes).await.unwrap_err();
    assert_eq!(error.code, "InvalidOrgResponse");
    assert!(error.retryable);
}

/// The fake's paging: 3 pages of 2 rows; the cookie of page N must come back exactly.
fn paging_hook(seen: &Seen) -> Option<Response> {
    if !seen.path.ends_with("/accounts") {
        return None;
    }
    let fetch = seen.param("fetchXml").expect("a fetchXml parameter");
    let document = roxmltree::Document::parse(&fetch).expect("the FetchXML is well-formed");
    let root = document.root_element();
    let page: u32 = root
        .attribute("page")
        .map_or(1, |page| page.parse().unwrap());
    assert_eq!(root.attribute("count"), Some("2"));
    let cookie_of = |page: u32| {
        format!(
            r#"<cookie page="{page}"><accountid last="{{ID-{page}}}" first="{{X&amp;Y}}" /></cookie>"#
        )
    };
    if page > 1 {
        assert_eq!(
            root.attribute("paging-cookie"),
            Some(cookie_of(page - 1).as_str()),
            "the cookie did not come back exactly"
        );
    } else {
        assert_eq!(root.attribute("paging-cookie"), None);
    }
    assert_eq!(
        seen.header("prefer"),
        Some("odata.include-annotations=\"*\"")
    );
    let rows: Vec<Value> = (0..2)
        .map(|index| {
            json!({
                "@odata.etag": "W/\"1\"",
                "accountid": format!("5e000000-0000-4000-8000-00000000{page:02}{index:02}"),
                "name": format!("row {page}.{index}"),
                "_ownerid_value": USER,
                "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
                "name@OData.Community.Display.V1.FormattedValue": "x",
                "contact1_x002e_fullname": "Jo"
            })
        })
        .collect();
    let mut body = json!({"@odata.context": "x", "value": rows});
    if page < 3 {
        body[odata::MORE_RECORDS] = json!(true);
        body[odata::PAGING_COOKIE] =
            json!(odata::paging_cookie_annotation(page + 1, &cookie_of(page)));
    }
    Some(json_response(200, body))
}

#[tokio::test]
async fn the_paging_cookie_round_trips_over_three_pages() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.hook(paging_hook);
    let mut request = PageRequest {
        page: Some(1),
        count: Some(2),
        paging_cookie: None,
    };
    let mut rows = Vec::new();
    loop {
        let page = org.query_page(FETCH, &request).await.unwrap();
        rows.extend(page.rows);
        if !page.more_records {
            assert_eq!(page.paging_cookie, None);
            break;
        }
        request = PageRequest {
            page: request.page.map(|page| page + 1),
            count: Some(2),
            paging_cookie: page.paging_cookie,
        };
    }
    assert_eq!(rows.len(), 6);
    assert_eq!(fake.seen("/accounts").len(), 3);
    assert_eq!(rows[5]["name"], "row 3.1");
    assert_eq!(rows[0]["ownerid"], USER);
    assert_eq!(rows[0]["contact1.fullname"], "Jo");
    assert!(
        !rows[0].keys().any(|key| key.contains('@')),
        "{:?}",
        rows[0]
    );
    // The query string is URL-encoded with %20, never +.
    let first = &fake.seen("/accounts")[0];
    assert!(
        first.query.starts_with("fetchXml=%3cfetch%20"),
        "{}",
        first.query
    );
}

#[tokio::test]
async fn a_too_long_url_goes_inside_a_batch_or_is_refused() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let values: String = (0..1_000)
        .map(|index| format!("<value>name number {index}</value>"))
        .collect();
    let long = format!(
        r#"<fetch><entity name="account"><filter><condition attribute="name" operator="in">{values}</condition></filter></entity></fetch>"#
    );
    let page = org
        .query_page(&long, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.rows[0]["name"], "long");
    let batch = &fake.seen("$batch")[0];
    assert!(
        batch.body.contains("GET /api/data/v9.2/accounts?fetchXml="),
        "{}",
        &batch.body[..300]
    );
    let huge: String = (0..4_000)
        .map(|index| format!("<value>name number {index}</value>"))
        .collect();
    let huge = long.replace(&values, &huge);
    let error = org
        .query_page(&huge, &PageRequest::default())
        .await
        .unwrap_err();
    assert!(error.message.contains("at most 65536"), "{}", error.message);
}

#[tokio::test]
async fn updates_go_in_one_update_multiple_request_where_supported() {
    let fake = Fake::new();
    *fake.multiple_supported.lock().unwrap() = true;
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let writes: Vec<Write> = [ID1, ID2, ID3]
        .iter()
        .map(|id| Write::Update {
            entity: "account".into(),
            id: (*id).into(),
            values: json!({"name": "new", "parentaccountid": ID1})
                .as_object()
                .unwrap()
                .clone(),
        })
        .collect();
    let results = org.write_batch(&writes).await.unwrap();
    assert_eq!(results, vec![Ok(()), Ok(()), Ok(())]);
    let sent = fake.seen("UpdateMultiple");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].path,
        "/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.UpdateMultiple"
    );
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body["Targets"][1],
        json!({"name": "new", "parentaccountid@odata.bind": format!("/accounts({ID1})"),
               "accountid": ID2, "@odata.type": "Microsoft.Dynamics.CRM.account"})
    );
    // Asked once per table.
    org.write_batch(&writes).await.unwrap();
    assert_eq!(fake.seen("sdkmessagefilters").len(), 1);
    assert!(
        sent[0]
            .header("mscrm.bypasscustompluginexecution")
            .is_none()
    );
    org.bypassing_plugins(true)
        .write_batch(&writes)
        .await
        .unwrap();
    let bypassed = fake.seen("UpdateMultiple");
    assert_eq!(
        bypassed[2].header("mscrm.bypasscustompluginexecution"),
        Some("true")
    );
}

#[tokio::test]
async fn a_refused_bulk_request_falls_back_to_per_record_results() {
    let fake = Fake::new();
    *fake.multiple_supported.lock().unwrap() = true;
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.hook(|seen| {
        seen.path
            .ends_with("UpdateMultiple")
            .then(|| error_response(400, odata::INVALID_ARGUMENT, "one record is bad"))
    });
    let writes: Vec<Write> = [ID1, ID2]
        .iter()
        .map(|id| Write::Update {
            entity: "account".into(),
            id: (*id).into(),
            values: json!({"name": "x"}).as_object().unwrap().clone(),
        })
        .collect();
    let results = org.write_batch(&writes).await.unwrap();
    assert_eq!(results, vec![Ok(()), Ok(())]);
    assert_eq!(fake.seen("$batch").len(), 1);
}

#[tokio::test]
async fn batch_requests_have_the_documented_shape_and_one_result_per_record() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let writes = vec![
        Write::Delete {
            entity: "account".into(),
            id: ID1.into(),
        },
        Write::Delete {
            entity: "account".into(),
            id: ID2.into(),
        },
        Write::Assign {
            entity: "account".into(),
            id: ID3.into(),
            owner: OwnerRef {
                entity: "team".into(),
                id: USER.into(),
            },
        },
        Write::SetState {
            entity: "account".into(),
            id: ID3.into(),
            statecode: 1,
            statuscode: 2,
        },
        Write::Update {
            entity: "nosuchtable".into(),
            id: ID1.into(),
            values: Row::new(),
        },
    ];
    let results = org.write_batch(&writes).await.unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], Ok(()));
    let missing = results[1].clone().unwrap_err();
    assert_eq!(
        (missing.code, missing.number),
        ("ObjectDoesNotExist", odata::OBJECT_DOES_NOT_EXIST)
    );
    assert_eq!(results[2], Ok(()));
    assert_eq!(results[3], Ok(()));
    assert_eq!(results[4].clone().unwrap_err().code, "ResourceNotFound");
    let batch = &fake.seen("$batch")[0];
    assert_eq!(batch.method, Method::POST);
    assert_eq!(batch.header("prefer"), Some("odata.continue-on-error"));
    let content_type = batch.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap();
    assert!(batch.body.starts_with(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    )));
    assert!(batch.body.ends_with(&format!("--{boundary}--\r\n")));
    assert!(!batch.body.contains("changeset"));
    assert!(batch.body.contains(&format!(
        "DELETE /api/data/v9.2/accounts({ID1}) HTTP/1.1\r\n"
    )));
    assert!(batch.body.contains(&format!(
        "PATCH /api/data/v9.2/accounts({ID3}) HTTP/1.1\r\nContent-Type: application/json; type=entry\r\nIf-Match: *\r\n\r\n{{\"ownerid@odata.bind\":\"/teams({USER})\"}}\r\n"
    )));
    assert!(batch.body.contains(r#"{"statecode":1,"statuscode":2}"#));
    assert_eq!(batch.body.matches("HTTP/1.1\r\n").count(), 4);
}

#[tokio::test]
async fn batch_parts_throttled_or_unanswered_are_sent_again() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let mut round = 0;
    fake.hook(move |seen| {
        if !seen.path.ends_with("$batch") {
            return None;
        }
        round += 1;
        if round > 1 {
            return None;
        }
        // First round: part 1 answered, part 2 throttled, part 3 never answered.
        let body = format!(
            "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n{}\r\n--b--\r\n",
            odata::error_body(odata::THROTTLE_REQUESTS, "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
        );
        Some(
            Response::builder()
                .status(200)
                .header("content-type", "multipart/mixed; boundary=b")
                .body(Body::from(body))
                .unwrap(),
        )
    });
    let writes: Vec<Write> = [ID1, ID3, ID1]
        .iter()
        .map(|id| Write::Delete {
            entity: "account".into(),
            id: (*id).into(),
        })
        .collect();
    let started = Instant::now();
    let results = org.write_batch(&writes).await.unwrap();
    assert_eq!(results, vec![Ok(()), Ok(()), Ok(())]);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let batches = fake.seen("$batch");
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].body.matches("HTTP/1.1\r\n").count(), 2);
}

#[tokio::test]
async fn a_429_pauses_the_whole_connection_for_its_retry_after() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let throttled = Arc::new(AtomicUsize::new(0));
    let count = throttled.clone();
    fake.hook(move |seen| {
        (seen.path.ends_with("/accounts") && count.fetch_add(1, Ordering::SeqCst) == 0).then(|| {
            let mut response = error_response(
                429,
                odata::THROTTLE_CONCURRENCY,
                "Number of concurrent requests exceeded the limit of 52.",
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        })
    });
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    let throttled_at = Instant::now();
    assert!(error.retryable);
    assert_eq!(error.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(error.number, odata::THROTTLE_CONCURRENCY);
    assert!(error.message.contains("429"), "{}", error.message);
    // Any other operation on the connection waits for the pause too.
    let other = org.clone();
    let request = PageRequest::default();
    let delete = [Write::Delete {
        entity: "account".into(),
        id: ID1.into(),
    }];
    let (first, second) =
        tokio::join!(org.query_page(FETCH, &request), other.write_batch(&delete),);
    first.unwrap();
    second.unwrap();
    let waited = throttled_at.elapsed();
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(org.budget().throttled, 1);
}

#[tokio::test]
async fn concurrency_follows_the_dop_hint_and_never_exceeds_it() {
    let fake = Fake::new();
    *fake.dop_hint.lock().unwrap() = Some(3);
    *fake.delay.lock().unwrap() = Duration::from_millis(40);
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.peak.store(0, Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let org = org.clone();
        tasks.spawn(async move { org.query_page(FETCH, &PageRequest::default()).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let peak = fake.peak.load(Ordering::SeqCst);
    assert_eq!(peak, 3, "the server saw {peak} requests at once");
    assert!(org.budget().peak <= 3);
    assert_eq!(org.budget().ceiling, 3.0);
}

#[tokio::test]
async fn never_more_than_52_in_flight_and_429_halves_the_window() {
    let budget = budget::Budget::new(4, 500);
    budget.hint(500);
    assert_eq!(budget.snapshot().ceiling, 52.0);
    assert_eq!(budget.snapshot().limit, 52.0);
    let permits: Vec<_> = {
        let mut permits = Vec::new();
        for _ in 0..52 {
            permits.push(budget.acquire().await);
        }
        permits
    };
    let blocked = tokio::time::timeout(Duration::from_millis(50), budget.acquire()).await;
    assert!(blocked.is_err(), "a 53rd request was let through");
    let started = permits[0].started();
    budget.throttled(started, Duration::from_millis(10));
    budget.throttled(started, Duration::from_millis(10));
    assert_eq!(
        budget.snapshot().limit,
        26.0,
        "two 429s of one round halve it once"
    );
    drop(permits);
    for _ in 0..200 {
        budget.succeeded();
    }
    assert!(budget.snapshot().limit <= 52.0);
    assert!(budget.snapshot().limit > 26.0, "additive increase");
}

#[tokio::test]
async fn background_calls_poll_the_status_monitor_until_done() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let location = format!("{url}/api/backgroundoperation/{ID3}");
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    fake.hook(move |seen| {
        if seen.path.ends_with("/sample_Recalculate") {
            if seen.header("prefer") == Some("respond-async") {
                let mut response = json_response(202, json!({}));
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
                return Some(response);
            }
            return Some(json_response(200, json!({"@odata.context": "x", "Done": true})));
        }
        if seen.path.ends_with("/sample_Fails") {
            return Some(error_response(400, odata::INVALID_ARGUMENT, "bad target"));
        }
        if seen.path.starts_with("/api/backgroundoperation/") {
            let poll = counter.fetch_add(1, Ordering::SeqCst);
            return Some(json_response(
                200,
                if poll < 2 {
                    json!({"backgroundOperationStateCode": 2, "backgroundOperationStatusCode": 20})
                } else {
                    json!({"backgroundOperationStateCode": 3, "backgroundOperationStatusCode": 30, "Done": true})
                },
            ));
        }
        None
    });
    let call = |api: &str, background: bool| ApiCall {
        api: api.into(),
        params: json!({"Target": format!("account:{ID1}"), "Amount": 2})
            .as_object()
            .unwrap()
            .clone(),
        idempotency_key: format!("key-{api}"),
        background,
    };
    let results = org
        .call_batch(&[
            call("sample_Recalculate", true),
            call("sample_Recalculate", false),
            call("sample_Fails", false),
        ])
        .await
        .unwrap();
    assert_eq!(results[0].clone().unwrap()["Done"], true);
    assert!(
        !results[0]
            .clone()
            .unwrap()
            .contains_key("backgroundOperationStateCode")
    );
    assert_eq!(
        results[1].clone().unwrap(),
        json!({"Done": true}).as_object().unwrap().clone()
    );
    assert_eq!(results[2].clone().unwrap_err().code, "InvalidArgument");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    let sent = fake.seen("/sample_Recalculate");
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body["Target"],
        json!({"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": ID1})
    );
    assert_eq!(
        sent[0].header("idempotency-key"),
        Some("key-sample_Recalculate")
    );
}

#[tokio::test]
async fn the_secret_never_appears_in_errors_or_logs() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut texts = Vec::new();
    // A cache path that cannot be written logs a warning.
    let blocked = DataverseOptions {
        metadata_cache: Some(std::path::PathBuf::from("/proc/version/metadata/prod.json")),
        ..options()
    };
    let org = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        blocked,
    )
    .await
    .unwrap();
    texts.push(format!("{org:?}"));
    fake.hook(|_| Some(error_response(500, odata::UNEXPECTED, "boom")));
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert!(error.retryable);
    texts.push(format!("{error} {error:?}"));
    let wrong = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets("another-wrong-secret"),
        options(),
    )
    .await
    .unwrap_err();
    texts.push(format!("{wrong} {wrong:?}"));
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("metadata cache"), "{logged}");
    texts.push(logged);
    for text in texts {
        assert_secret_free(&text);
        assert!(!text.contains("another-wrong-secret"), "{text}");
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn connect_blocking_works_inside_and_outside_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = Fake::new();
    let url = runtime.block_on(start(fake.clone()));
    let org = DataverseOrg::connect_blocking(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        options(),
    )
    .unwrap();
    // Used afterwards on another runtime: no connection of the connecting runtime is reused.
    let page = runtime
        .block_on(org.query_page(FETCH, &PageRequest::default()))
        .unwrap();
    assert_eq!(page.rows.len(), 1);
    let inside = runtime.block_on(async {
        DataverseOrg::connect_blocking(
            "prod",
            &settings(&url, "{{ secret('DV_SECRET') }}"),
            secrets(SECRET),
            options(),
        )
    });
    assert!(inside.is_ok());
}

#[test]
fn fetch_paging_attributes_are_rewritten_and_the_rest_kept() {
    let fetch = r#"<fetch version="1.0" page="9" mapping='logical'><entity name="account"><attribute name="name"/></entity></fetch>"#;
    let (rewritten, shape) = encode::with_paging(
        fetch,
        Some(2),
        Some(50),
        Some(r#"<cookie page="1"><accountid last="{A}" first="{B}" /></cookie>"#),
    )
    .unwrap();
    assert_eq!(shape.entity, "account");
    assert_eq!(
        rewritten,
        r#"<fetch version="1.0" mapping="logical" page="2" count="50" paging-cookie="&lt;cookie page=&quot;1&quot;&gt;&lt;accountid last=&quot;{A}&quot; first=&quot;{B}&quot; /&gt;&lt;/cookie&gt;"><entity name="account"><attribute name="name"/></entity></fetch>"#
    );
    let (unchanged, _) = encode::with_paging(fetch, None, None, None).unwrap();
    assert_eq!(unchanged, fetch);
    assert!(encode::with_paging("<fetch><entity/></fetch>", None, None, None).is_err());
    assert!(encode::with_paging("<fetch", None, None, None).is_err());
}

#[test]
fn batch_responses_with_change_sets_are_flattened_and_cut_bodies_refused() {
    let body = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-EntityId: x\r\n\r\n\r\n--changesetresponse_2--\r\n--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80040217\",\"message\":\"gone\"}}\r\n--batchresponse_1--\r\n";
    let answers =
        batch::parse("multipart/mixed; boundary=batchresponse_1", body.as_bytes()).unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].status, 204);
    assert_eq!(answers[0].header("odata-entityid"), Some("x"));
    assert_eq!(answers[1].status, 404);
    assert_eq!(
        errors::record_error(404, &answers[1].body).code,
        "ObjectDoesNotExist"
    );
    let cut = &body[..body.len() - 30];
    assert!(batch::parse("multipart/mixed; boundary=batchresponse_1", cut.as_bytes()).is_err());
    assert!(batch::parse("application/json", body.as_bytes()).is_err());
}

#[tokio::test]
async fn connecting_survives_a_transient_failure() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let mut failed = false;
    fake.hook(move |seen| {
        (seen.path.ends_with("/WhoAmI") && !std::mem::replace(&mut failed, true))
            .then(|| error_response(503, odata::UNEXPECTED, "try again"))
    });
    let org = connect(&url).await;
    assert_eq!(fake.seen("/WhoAmI").len(), 2);
    assert!(org.catalogue().entity("account").is_some());
}

#[test]
fn serve_opens_a_dataverse_connection_once_with_its_metadata_cache() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = Fake::new();
    let url = runtime.block_on(start(fake.clone()));
    let directory = std::env::temp_dir().join(format!("ff-dv-{}", uuid::Uuid::new_v4()));
    let mut config = crate::config::Config::defaults(&directory);
    config.connections = vec![(
        "prod".to_string(),
        crate::config::Connection::Dataverse {
            url: url.clone(),
            tenant: TENANT.to_string(),
            client_id: CLIENT.to_string(),
            client_secret: "{{ secret('DV_SECRET') }}".to_string(),
            authority: url,
        },
    )];
    let orgs = crate::serve::Orgs::from_config_with_secrets(Arc::new(config), secrets(SECRET));
    let first = orgs.get("prod").unwrap();
    let second = orgs.get("prod").unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "one org (one budget) per connection"
    );
    assert!(first.catalogue().entity("account").is_some());
    assert!(directory.join(".fetchflow/metadata/prod.json").is_file());
    assert_eq!(fake.seen("/WhoAmI").len(), 1);
    let page = runtime
        .block_on(first.query_page(FETCH, &PageRequest::default()))
        .unwrap();
    assert_eq!(page.rows.len(), 1);
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test]
async fn creates_go_in_create_multiple_and_a_short_ids_list_is_an_error() {
    let fake = Fake::new();
    *fake.multiple_supported.lock().unwrap() = true;
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    let answered = Arc::new(Mutex::new(2usize));
    let ids = answered.clone();
    fake.hook(move |seen| {
        seen.path.ends_with("CreateMultiple").then(|| {
            let count = *ids.lock().unwrap();
            json_response(200, json!({"Ids": vec![ID1; count]}))
        })
    });
    let creates: Vec<Write> = [ID1, ID2]
        .iter()
        .map(|id| Write::Create {
            entity: "account".into(),
            id: (*id).into(),
            values: json!({"name": "created"}).as_object().unwrap().clone(),
        })
        .collect();
    assert_eq!(
        org.write_batch(&creates).await.unwrap(),
        vec![Ok(()), Ok(())]
    );
    let sent = fake.seen("CreateMultiple");
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body["Targets"][1],
        json!({"name": "created", "accountid": ID2, "@odata.type": "Microsoft.Dynamics.CRM.account"})
    );
    *answered.lock().unwrap() = 1;
    let error = org.write_batch(&creates).await.unwrap_err();
    assert_eq!(error.code, "InvalidOrgResponse");
    assert!(error.retryable);
}

#[tokio::test]
async fn a_rejected_paging_cookie_and_server_errors_name_the_connection_and_request() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = connect(&url).await;
    fake.hook(|seen| {
        (seen.path.ends_with("/accounts")).then(|| {
            if seen
                .param("fetchXml")
                .is_some_and(|fetch| fetch.contains("paging-cookie"))
            {
                error_response(400, -2147217019, "The paging cookie is not valid.")
            } else {
                error_response(503, odata::UNEXPECTED, "Service Unavailable")
            }
        })
    });
    let request = PageRequest {
        page: Some(2),
        count: Some(10),
        paging_cookie: Some("<cookie page=\"1\"><bogus/></cookie>".into()),
    };
    let error = org.query_page(FETCH, &request).await.unwrap_err();
    assert_eq!(error.code, "QueryBuilderInvalidPagingCookie");
    assert!(!error.retryable);
    assert!(
        error
            .message
            .starts_with("connection `prod`: GET /api/data/v9.2/accounts: 400: "),
        "{}",
        error.message
    );
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert!(error.retryable);
    assert_eq!(error.retry_after, None);
    assert!(error.message.contains("503"), "{}", error.message);
}

#[tokio::test]
async fn a_request_without_an_answer_in_time_is_a_retryable_timeout() {
    let fake = Fake::new();
    let url = start(fake.clone()).await;
    let org = DataverseOrg::connect_with(
        "prod",
        &settings(&url, "{{ secret('DV_SECRET') }}"),
        secrets(SECRET),
        DataverseOptions {
            request_timeout: Duration::from_millis(300),
            ..options()
        },
    )
    .await
    .unwrap();
    *fake.delay.lock().unwrap() = Duration::from_millis(1_500);
    let started = Instant::now();
    let error = org
        .query_page(FETCH, &PageRequest::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1_200));
    assert_eq!(error.code, "RequestTimeout");
    assert!(error.retryable);
    assert!(
        error
            .message
            .starts_with("connection `prod`: GET /api/data/v9.2/accounts")
    );
}

/// The fake for tests elsewhere in the crate (`metadata pull`).
pub(crate) mod fake {
    use std::sync::Arc;

    use crate::template::SecretSource;

    pub(crate) use super::{CLIENT, TENANT};

    /// A fake environment with default knobs; its URL (also its authority) and the secrets
    /// that make `{{ secret('DV_SECRET') }}` its client secret.
    pub(crate) async fn start_default() -> (String, Arc<dyn SecretSource>) {
        let url = super::start(super::Fake::new()).await;
        (url, super::secrets(super::SECRET))
    }
}
