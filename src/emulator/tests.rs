//! Tests of the emulator through its router (`tower::ServiceExt::oneshot`, no sockets except
//! the callback receiver): conformance with the documented request and response shapes of the
//! reference, upsert, all-or-nothing writes, throttling, tokens and bad input.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::emulator::{ClientCredentials, EmulatorOptions, router};
use crate::metadata::Catalogue;
use crate::org::PageRequest;
use crate::org::local::{DemoSize, LocalOrg};
use crate::org::odata::{self, url_encode, xml_escape};

const BASE: &str = "/api/data/v9.2/";
const MISSING: &str = "0e000000-0000-4000-8000-00000000dead";
const ANNOTATIONS: &str = "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\"";

fn demo_org(accounts: usize) -> Arc<LocalOrg> {
    let org = LocalOrg::in_memory(Catalogue::builtin()).unwrap();
    org.populate_demo(DemoSize { accounts }).unwrap();
    Arc::new(org)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The Dataverse error code of an error response.
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "org.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Method::GET, uri, &[], Body::empty()).await
}

async fn json_request(app: &Router, method: Method, uri: &str, body: Value) -> Reply {
    send(
        app,
        method,
        uri,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

fn account_ids(org: &LocalOrg) -> Vec<String> {
    let page = org
        .query(
            "<fetch><entity name='account'><attribute name='accountid'/><order attribute='accountid'/></entity></fetch>",
            &PageRequest::default(),
        )
        .unwrap();
    page.rows
        .iter()
        .map(|row| row["accountid"].as_str().unwrap().to_owned())
        .collect()
}

fn fetch_uri(set: &str, fetchxml: &str) -> String {
    format!("{BASE}{set}?fetchXml={}", url_encode(fetchxml))
}

#[tokio::test]
async fn who_am_i_and_dop_hint() {
    let app = router(demo_org(2), EmulatorOptions::default());
    let reply = get(&app, &format!("{BASE}WhoAmI")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    for key in ["UserId", "BusinessUnitId", "OrganizationId"] {
        assert!(
            odata::normalize_guid(body[key].as_str().unwrap()).is_some(),
            "{key}: {body}"
        );
    }
    assert_eq!(reply.header("x-ms-dop-hint"), Some("52"));
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("http://org.test/api/data/v9.2/$metadata#")
    );
}

#[tokio::test]
async fn fetchxml_pages_round_trip_through_the_documented_cookie() {
    let org = demo_org(25);
    let app = router(org.clone(), EmulatorOptions::default());
    let fetch = |page: u32, cookie: Option<&str>| {
        let cookie = cookie
            .map(|cookie| format!(" paging-cookie=\"{}\"", xml_escape(cookie)))
            .unwrap_or_default();
        format!(
            "<fetch count=\"10\" page=\"{page}\"{cookie}><entity name=\"account\">\
             <attribute name=\"name\"/><attribute name=\"ownerid\"/><order attribute=\"name\"/></entity></fetch>"
        )
    };
    let mut seen = Vec::new();
    let mut cookie: Option<String> = None;
    for page in 1..=3u32 {
        let reply = send(
            &app,
            Method::GET,
            &fetch_uri("accounts", &fetch(page, cookie.as_deref())),
            &[("prefer", ANNOTATIONS)],
            Body::empty(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        assert_eq!(
            body["@odata.context"],
            "http://org.test/api/data/v9.2/$metadata#accounts"
        );
        let rows = body["value"].as_array().unwrap();
        for row in rows {
            seen.push(row["accountid"].as_str().unwrap().to_owned());
            // Lookups read back as _x_value; annotations only when asked for.
            assert!(row.get("_ownerid_value").is_some(), "{row}");
            assert!(row.get("ownerid").is_none());
            assert!(
                row.get("_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname")
                    .is_none()
            );
        }
        let annotation = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"].as_str();
        if page < 3 {
            assert_eq!(rows.len(), 10);
            assert_eq!(body["@Microsoft.Dynamics.CRM.morerecords"], true);
            let annotation = annotation.unwrap();
            let prefix = format!(
                "<cookie pagenumber=\"{}\" pagingcookie=\"%253ccookie%2520page%253d%2522{page}%2522%253e",
                page + 1
            );
            assert!(annotation.starts_with(&prefix), "{annotation}");
            assert!(annotation.ends_with("\" istracking=\"False\" />"));
            let (next, decoded) = odata::parse_paging_cookie_annotation(annotation).unwrap();
            assert_eq!(next, page + 1);
            cookie = Some(decoded);
        } else {
            assert_eq!(rows.len(), 5);
            assert!(annotation.is_none(), "{body}");
            assert!(body.get("@Microsoft.Dynamics.CRM.morerecords").is_none());
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, account_ids(&org), "every row once");

    // Without the Prefer header there are no paging annotations.
    let reply = get(&app, &fetch_uri("accounts", &fetch(1, None))).await;
    let body = reply.json();
    assert!(
        body.get("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")
            .is_none()
    );
    assert_eq!(body["value"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn retrieve_with_select_and_lookup_annotations() {
    let org = demo_org(3);
    let app = router(org.clone(), EmulatorOptions::default());
    let id = &account_ids(&org)[0];
    let reply = send(
        &app,
        Method::GET,
        &format!("{BASE}accounts({id})?$select=name,_ownerid_value"),
        &[("prefer", "odata.include-annotations=\"*\"")],
        Body::empty(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert!(body["name"].is_string());
    assert!(
        body.get("revenue").is_none(),
        "only the selected columns: {body}"
    );
    let target = body["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"]
        .as_str()
        .unwrap();
    assert!(target == "systemuser" || target == "team", "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#accounts(name,_ownerid_value)/$entity")
    );

    let missing = get(&app, &format!("{BASE}accounts({MISSING})")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "0x80040217");
    assert_eq!(
        missing.json()["error"]["message"],
        format!("account With Id = {MISSING} Does Not Exist")
    );
    let bad_column = get(&app, &format!("{BASE}accounts({id})?$select=nosuch")).await;
    assert_eq!(bad_column.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_column.code(), "0x80060888");
}

#[tokio::test]
async fn create_update_upsert_and_delete() {
    let org = demo_org(2);
    let app = router(org.clone(), EmulatorOptions::default());
    let parent = account_ids(&org)[0].clone();
    let created = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts"),
        json!({"name": "Fabrikam", "parentaccountid@odata.bind": format!("/accounts({parent})")}),
    )
    .await;
    assert_eq!(created.status, StatusCode::NO_CONTENT, "{}", created.text());
    let entity_id = created.header("odata-entityid").unwrap().to_owned();
    let (set, id) = odata::parse_entity_id_url(&entity_id).unwrap();
    assert_eq!(set, "accounts");
    assert!(entity_id.starts_with("http://org.test/api/data/v9.2/accounts("));

    let shown = get(
        &app,
        &format!("{BASE}accounts({id})?$select=name,parentaccountid"),
    )
    .await;
    assert_eq!(shown.json()["_parentaccountid_value"], parent.as_str());

    // Prefer: return=representation → 201 with the row.
    let represented = send(
        &app,
        Method::POST,
        &format!("{BASE}accounts?$select=name"),
        &[
            ("content-type", "application/json"),
            ("prefer", "return=representation"),
        ],
        json!({"name": "Shown"}).to_string(),
    )
    .await;
    assert_eq!(represented.status, StatusCode::CREATED);
    assert_eq!(represented.json()["name"], "Shown");
    assert!(represented.header("odata-entityid").is_none());

    // Upsert: a PATCH of a missing id creates it; If-Match: * refuses to.
    let new_id = "0e000000-0000-4000-8000-000000000abc";
    let refused = send(
        &app,
        Method::PATCH,
        &format!("{BASE}accounts({new_id})"),
        &[("content-type", "application/json"), ("if-match", "*")],
        json!({"name": "Nope"}).to_string(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(refused.code(), "0x80040217");
    let upserted = json_request(
        &app,
        Method::PATCH,
        &format!("{BASE}accounts({new_id})"),
        json!({"name": "Upserted"}),
    )
    .await;
    assert_eq!(
        upserted.status,
        StatusCode::NO_CONTENT,
        "{}",
        upserted.text()
    );
    assert_eq!(
        get(&app, &format!("{BASE}accounts({new_id})?$select=name"))
            .await
            .json()["name"],
        "Upserted"
    );
    let create_only = send(
        &app,
        Method::PATCH,
        &format!("{BASE}accounts({new_id})"),
        &[("content-type", "application/json"), ("if-none-match", "*")],
        json!({"name": "Again"}).to_string(),
    )
    .await;
    assert_eq!(create_only.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(create_only.code(), "0x80040237");

    // One PATCH sets columns, owner and state together.
    let team = org
        .query(
            "<fetch top='1'><entity name='team'><attribute name='teamid'/></entity></fetch>",
            &PageRequest::default(),
        )
        .unwrap()
        .rows[0]["teamid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = send(
        &app,
        Method::PATCH,
        &format!("{BASE}accounts({new_id})"),
        &[("content-type", "application/json"), ("if-match", "*")],
        json!({"description": "d", "ownerid@odata.bind": format!("/teams({team})"), "statecode": 1, "statuscode": 2}).to_string(),
    )
    .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT, "{}", patched.text());
    let row = send(
        &app,
        Method::GET,
        &format!("{BASE}accounts({new_id})"),
        &[("prefer", "odata.include-annotations=\"*\"")],
        Body::empty(),
    )
    .await
    .json();
    assert_eq!(row["description"], "d");
    assert_eq!(row["statecode"], 1);
    assert_eq!(row["_ownerid_value"], team.as_str());
    assert_eq!(
        row["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"],
        "team"
    );

    // A PATCH whose state is invalid changes nothing, not even the columns before it.
    let invalid = send(
        &app,
        Method::PATCH,
        &format!("{BASE}accounts({new_id})"),
        &[("content-type", "application/json"), ("if-match", "*")],
        json!({"description": "changed", "statecode": 0, "statuscode": 99}).to_string(),
    )
    .await;
    assert_eq!(
        invalid.status,
        StatusCode::BAD_REQUEST,
        "{}",
        invalid.text()
    );
    let row = get(
        &app,
        &format!("{BASE}accounts({new_id})?$select=description"),
    )
    .await;
    assert_eq!(row.json()["description"], "d");

    let deleted = send(
        &app,
        Method::DELETE,
        &format!("{BASE}accounts({new_id})"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = send(
        &app,
        Method::DELETE,
        &format!("{BASE}accounts({new_id})"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "0x80040217");
}

#[tokio::test]
async fn bulk_messages_follow_the_documented_bodies() {
    let org = demo_org(2);
    let app = router(org.clone(), EmulatorOptions::default());
    let created = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.CreateMultiple"),
        json!({"Targets": [
            {"name": "sample record 0000001", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            {"name": "sample record 0000002", "@odata.type": "Microsoft.Dynamics.CRM.account"}
        ]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let body = created.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    );
    let ids: Vec<String> = body["Ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);

    let updated = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.UpdateMultiple"),
        json!({"Targets": [
            {"accountid": ids[0], "name": "one", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            {"accountid": ids[1], "name": "two", "@odata.type": "Microsoft.Dynamics.CRM.account"}
        ]}),
    )
    .await;
    assert_eq!(updated.status, StatusCode::NO_CONTENT, "{}", updated.text());
    let name = |reply: Reply| reply.json()["name"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        name(get(&app, &format!("{BASE}accounts({})", ids[1])).await),
        "two"
    );

    // All or nothing: a missing row fails the request and the first update is undone.
    let failed = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.UpdateMultiple"),
        json!({"Targets": [
            {"accountid": ids[0], "name": "changed", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            {"accountid": MISSING, "name": "x", "@odata.type": "Microsoft.Dynamics.CRM.account"}
        ]}),
    )
    .await;
    assert_eq!(failed.status, StatusCode::NOT_FOUND, "{}", failed.text());
    assert_eq!(failed.code(), "0x80040217");
    assert_eq!(
        name(get(&app, &format!("{BASE}accounts({})", ids[0])).await),
        "one"
    );

    // A failed CreateMultiple leaves no row behind.
    let before = account_ids(&org).len();
    let failed = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.CreateMultiple"),
        json!({"Targets": [
            {"name": "ok", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            {"name": "bad", "numberofemployees": "many", "@odata.type": "Microsoft.Dynamics.CRM.account"}
        ]}),
    )
    .await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST, "{}", failed.text());
    assert_eq!(account_ids(&org).len(), before);

    // UpsertMultiple creates the missing and updates the present; @odata.type is required.
    let upserted = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.UpsertMultiple"),
        json!({"Targets": [
            {"accountid": ids[0], "name": "up", "@odata.type": "Microsoft.Dynamics.CRM.account"},
            {"@odata.id": format!("accounts({MISSING})"), "name": "new", "@odata.type": "Microsoft.Dynamics.CRM.account"}
        ]}),
    )
    .await;
    assert_eq!(
        upserted.status,
        StatusCode::NO_CONTENT,
        "{}",
        upserted.text()
    );
    assert_eq!(
        name(get(&app, &format!("{BASE}accounts({MISSING})")).await),
        "new"
    );
    let untyped = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts/Microsoft.Dynamics.CRM.UpdateMultiple"),
        json!({"Targets": [{"accountid": ids[0], "name": "x"}]}),
    )
    .await;
    assert_eq!(untyped.status, StatusCode::BAD_REQUEST);
    assert!(untyped.text().contains("@odata.type"));
}

fn batch_body(boundary: &str, parts: &[String]) -> String {
    let mut body = String::new();
    for part in parts {
        body.push_str(&format!("--{boundary}\r\n{part}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

fn http_part(request: &str, content_id: Option<u32>) -> String {
    let id = content_id
        .map(|id| format!("Content-ID: {id}\r\n"))
        .unwrap_or_default();
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{id}\r\n{request}"
    )
}

fn change_set(boundary: &str, parts: &[String]) -> String {
    format!(
        "Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{}",
        batch_body(boundary, parts)
    )
}

async fn batch(app: &Router, body: String, continue_on_error: bool) -> Reply {
    let mut headers = vec![("content-type", "multipart/mixed; boundary=batch_AAA123")];
    if continue_on_error {
        headers.push(("prefer", "odata.continue-on-error"));
    }
    send(app, Method::POST, &format!("{BASE}$batch"), &headers, body).await
}

#[tokio::test]
async fn batch_change_sets_are_atomic_and_answered_as_multipart() {
    let org = demo_org(2);
    let app = router(org.clone(), EmulatorOptions::default());
    let before = account_ids(&org).len();
    let create_parent = http_part(
        "POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Parent\"}",
        Some(1),
    );
    let create_child = http_part(
        "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Child\",\"parentaccountid@odata.bind\":\"$1\"}",
        Some(2),
    );
    let query = http_part(
        &format!(
            "GET http://org.test/api/data/v9.2/accounts?fetchXml={} HTTP/1.1\r\nAccept: application/json\r\n",
            url_encode(
                "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='name' operator='eq' value='Child'/></filter></entity></fetch>"
            )
        ),
        None,
    );
    let body = batch_body(
        "batch_AAA123",
        &[
            change_set("changeset_BBB456", &[create_parent, create_child]),
            query,
        ],
    );
    let reply = batch(&app, body, false).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let content_type = reply.header("content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/mixed; boundary=batchresponse_"),
        "{content_type}"
    );
    let text = reply.text();
    assert!(
        text.contains("Content-Type: multipart/mixed; boundary=changesetresponse_"),
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 2, "{text}");
    assert!(text.contains("Content-ID: 1\r\n") && text.contains("Content-ID: 2\r\n"));
    assert!(text.contains("OData-EntityId: http://org.test/api/data/v9.2/accounts("));
    assert!(text.contains("HTTP/1.1 200 OK"));
    assert!(
        text.contains("\"name\":\"Child\""),
        "the GET sees the change set: {text}"
    );
    assert!(text.trim_end().ends_with("--"));
    assert_eq!(account_ids(&org).len(), before + 2);

    // A failing change set undoes its earlier requests; without continue-on-error the
    // batch stops there.
    let ok = http_part(
        "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Undone\"}",
        Some(1),
    );
    let failing = http_part(
        &format!(
            "PATCH accounts({MISSING}) HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: *\r\n\r\n{{\"name\":\"x\"}}"
        ),
        Some(2),
    );
    let later = http_part(
        "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Later\"}",
        None,
    );
    let body = batch_body(
        "batch_AAA123",
        &[
            change_set("changeset_C", &[ok.clone(), failing.clone()]),
            later.clone(),
        ],
    );
    let reply = batch(&app, body.clone(), false).await;
    let text = reply.text();
    assert!(text.contains("HTTP/1.1 404 Not Found"), "{text}");
    assert!(text.contains("0x80040217"));
    assert!(!text.contains("204 No Content"), "{text}");
    assert_eq!(account_ids(&org).len(), before + 2, "nothing written");

    // With odata.continue-on-error the independent request after it still runs.
    let reply = batch(&app, body, true).await;
    let text = reply.text();
    assert!(text.contains("HTTP/1.1 404 Not Found"));
    assert_eq!(text.matches("204 No Content").count(), 1, "{text}");
    assert_eq!(account_ids(&org).len(), before + 3);
}

#[tokio::test]
async fn bad_input_gets_dataverse_errors() {
    let org = demo_org(2);
    let app = router(org.clone(), EmulatorOptions::default());
    let malformed = send(
        &app,
        Method::POST,
        &format!("{BASE}accounts"),
        &[("content-type", "application/json")],
        "{\"name\": ",
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "0x80048d19");

    let unknown = get(&app, &format!("{BASE}widgets")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "0x8006088a");
    assert!(unknown.text().contains("'widgets'"));

    let bad_fetch = get(
        &app,
        &fetch_uri("accounts", "<fetch><entity name='account'>"),
    )
    .await;
    assert_eq!(bad_fetch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_fetch.code(),
        odata::hex_code(-2147220991),
        "{}",
        bad_fetch.text()
    );
    let bad_column = get(
        &app,
        &fetch_uri(
            "accounts",
            "<fetch><entity name='account'><attribute name='nosuch'/></entity></fetch>",
        ),
    )
    .await;
    assert_eq!(bad_column.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_column.code(), odata::hex_code(-2147217149));
    let wrong_set = get(
        &app,
        &fetch_uri("contacts", "<fetch><entity name='account'/></fetch>"),
    )
    .await;
    assert_eq!(wrong_set.status, StatusCode::BAD_REQUEST);

    let unknown_property = json_request(
        &app,
        Method::POST,
        &format!("{BASE}accounts"),
        json!({"nosuch": 1}),
    )
    .await;
    assert_eq!(unknown_property.code(), "0x80060888");

    let before = account_ids(&org).len();
    let create = http_part(
        "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"x\"}",
        None,
    );
    let full = batch_body("batch_AAA123", &[create]);
    let truncated = &full[..full.len() - 20];
    let reply = batch(&app, truncated.to_owned(), false).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(reply.code(), "0x80048d19");
    assert_eq!(
        account_ids(&org).len(),
        before,
        "a truncated batch writes nothing"
    );
    let no_boundary = send(
        &app,
        Method::POST,
        &format!("{BASE}$batch"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(no_boundary.status, StatusCode::BAD_REQUEST);

    let wrong_method = send(
        &app,
        Method::PUT,
        &format!("{BASE}accounts"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.code().starts_with("0x"));
    let elsewhere = get(&app, "/nowhere").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.code(), "0x8006088a");
}

#[tokio::test]
async fn request_limit_answers_429_with_retry_after() {
    let options = EmulatorOptions {
        limit_requests: Some(2),
        window: Duration::from_secs(60),
        ..EmulatorOptions::default()
    };
    let app = router(demo_org(1), options);
    for _ in 0..2 {
        assert_eq!(
            get(&app, &format!("{BASE}WhoAmI")).await.status,
            StatusCode::OK
        );
    }
    let throttled = get(&app, &format!("{BASE}WhoAmI")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.code(), "0x80072322");
    assert_eq!(
        throttled.json()["error"]["message"],
        "Number of requests exceeded the limit of 2 over time window of 60 seconds."
    );
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
    assert!(throttled.header("x-ms-dop-hint").is_some());
}

#[tokio::test]
async fn concurrency_limit_answers_429_at_once() {
    let options = EmulatorOptions {
        limit_concurrency: Some(1),
        latency: Duration::from_millis(300),
        ..EmulatorOptions::default()
    };
    let app = router(demo_org(1), options);
    let uri = format!("{BASE}WhoAmI");
    let (first, second) = tokio::join!(get(&app, &uri), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        get(&app, &uri).await
    });
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.code(), "0x80072326");
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(first.header("x-ms-dop-hint"), Some("1"));
    // The place is free again afterwards.
    assert_eq!(get(&app, &uri).await.status, StatusCode::OK);
}

#[tokio::test]
async fn faults_are_seeded_and_reproducible() {
    let options = EmulatorOptions {
        fail_rate: 0.5,
        seed: 42,
        ..EmulatorOptions::default()
    };
    let org = demo_org(1);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let app = router(org.clone(), options.clone());
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(get(&app, &format!("{BASE}WhoAmI")).await.status.as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let failures = runs[0].iter().filter(|status| **status == 503).count();
    assert!((8..=32).contains(&failures), "{failures} of 40");
    let all = router(
        org,
        EmulatorOptions {
            fail_rate: 1.0,
            ..EmulatorOptions::default()
        },
    );
    let reply = get(&all, &format!("{BASE}WhoAmI")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.code().starts_with("0x"));
}

async fn token(app: &Router, secret: &str) -> Reply {
    let form = format!(
        "client_id=app&scope={}&client_secret={}&grant_type=client_credentials",
        url_encode("https://org.test/.default"),
        url_encode(secret)
    );
    send(
        app,
        Method::POST,
        "/tenant-1/oauth2/v2.0/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
}

#[tokio::test]
async fn bearer_tokens_are_required_and_expire() {
    let credentials = Some(ClientCredentials {
        client_id: "app".into(),
        client_secret: "s3cret".into(),
    });
    let app = router(
        demo_org(1),
        EmulatorOptions {
            client_credentials: credentials.clone(),
            ..EmulatorOptions::default()
        },
    );
    let anonymous = get(&app, &format!("{BASE}WhoAmI")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );
    let wrong = token(&app, "nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_client");
    assert!(!wrong.text().contains("s3cret"));
    let issued = token(&app, "s3cret").await;
    assert_eq!(issued.status, StatusCode::OK);
    let body = issued.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let authorized = send(
        &app,
        Method::GET,
        &format!("{BASE}WhoAmI"),
        &[("authorization", &bearer)],
        Body::empty(),
    )
    .await;
    assert_eq!(authorized.status, StatusCode::OK);
    let forged = send(
        &app,
        Method::GET,
        &format!("{BASE}WhoAmI"),
        &[("authorization", "Bearer forged")],
        Body::empty(),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    // A token whose lifetime is over is refused.
    let short = router(
        demo_org(1),
        EmulatorOptions {
            client_credentials: credentials,
            token_lifetime: Duration::ZERO,
            ..EmulatorOptions::default()
        },
    );
    let body = token(&short, "s3cret").await.json();
    assert_eq!(body["expires_in"], 0);
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let expired = send(
        &short,
        Method::GET,
        &format!("{BASE}WhoAmI"),
        &[("authorization", &bearer)],
        Body::empty(),
    )
    .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.text().contains("expired"));
}

#[tokio::test]
async fn entity_definitions_and_typed_attribute_casts() {
    let app = router(demo_org(1), EmulatorOptions::default());
    let reply = get(
        &app,
        &format!(
            "{BASE}EntityDefinitions?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute&$filter={}",
            url_encode("LogicalName eq 'account'")
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let value = reply.json()["value"].clone();
    assert_eq!(value.as_array().unwrap().len(), 1);
    assert_eq!(value[0]["EntitySetName"], "accounts");
    assert_eq!(value[0]["PrimaryIdAttribute"], "accountid");
    assert_eq!(value[0]["PrimaryNameAttribute"], "name");
    assert!(value[0].get("TableType").is_none(), "$select applies");

    let attributes = get(
        &app,
        &format!("{BASE}EntityDefinitions(LogicalName='account')/Attributes"),
    )
    .await;
    let value = attributes.json()["value"].clone();
    let owner = value
        .as_array()
        .unwrap()
        .iter()
        .find(|attribute| attribute["LogicalName"] == "ownerid")
        .unwrap();
    assert_eq!(
        owner["@odata.type"],
        "#Microsoft.Dynamics.CRM.LookupAttributeMetadata"
    );
    assert_eq!(owner["Targets"], json!(["systemuser", "team"]));

    let picklists = get(
        &app,
        &format!("{BASE}EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet"),
    )
    .await;
    assert_eq!(picklists.status, StatusCode::OK, "{}", picklists.text());
    let value = picklists.json()["value"].clone();
    let industry = value
        .as_array()
        .unwrap()
        .iter()
        .find(|attribute| attribute["LogicalName"] == "industrycode")
        .unwrap();
    assert!(industry.get("AttributeType").is_none(), "$select applies");
    let options = industry["OptionSet"]["Options"].as_array().unwrap();
    assert!(!options.is_empty());
    assert!(options[0]["Value"].is_i64());
    assert!(options[0]["Label"]["UserLocalizedLabel"]["Label"].is_string());
    assert!(
        value
            .as_array()
            .unwrap()
            .iter()
            .all(|attribute| attribute["@odata.type"]
                == "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata")
    );

    let missing = get(
        &app,
        &format!("{BASE}EntityDefinitions(LogicalName='widget')"),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad_filter = get(
        &app,
        &format!("{BASE}EntityDefinitions?$filter=IsCustomEntity%20eq%20true"),
    )
    .await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);
}

/// A one-route HTTP server on loopback that forwards every POSTed body.
async fn callback_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new().route(
        "/callback",
        axum::routing::post(move |body: Bytes| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/callback"), receiver)
}

#[tokio::test]
async fn custom_api_inline_and_as_background_operation() {
    let org = demo_org(3);
    let app = router(org.clone(), EmulatorOptions::default());
    let id = account_ids(&org)[0].clone();
    let target =
        json!({"Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id}});
    let inline = json_request(
        &app,
        Method::POST,
        &format!("{BASE}sample_RecalculateCredit"),
        target.clone(),
    )
    .await;
    assert_eq!(inline.status, StatusCode::OK, "{}", inline.text());
    assert!(inline.json()["CreditOnHold"].is_boolean());

    let missing = json_request(
        &app,
        Method::POST,
        &format!("{BASE}sample_RecalculateCredit"),
        json!({"Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": MISSING}}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "0x80040217");

    // Background: 202, Location, the operation id; then the status monitor and the table row.
    let (url, mut callbacks) = callback_receiver().await;
    let prefer = format!("respond-async, odata.callback; url=\"{url}\"");
    let accepted = send(
        &app,
        Method::POST,
        &format!("{BASE}sample_RecalculateCredit"),
        &[("content-type", "application/json"), ("prefer", &prefer)],
        target.to_string(),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let operation = accepted
        .header("x-ms-dyn-backgroundoperationid")
        .unwrap()
        .to_owned();
    let location = accepted.header("location").unwrap().to_owned();
    assert_eq!(
        location,
        format!("http://org.test/api/backgroundoperation/{operation}")
    );
    assert_eq!(accepted.header("preference-applied"), Some("callback"));
    assert_eq!(accepted.json()["backgroundOperationId"], operation.as_str());

    let payload = tokio::time::timeout(Duration::from_secs(10), callbacks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        payload,
        json!({
            "location": location,
            "backgroundOperationId": operation,
            "backgroundOperationStateCode": 3,
            "backgroundOperationStatusCode": 30,
        }),
        "no outputs in the callback"
    );
    let status = get(&app, &format!("/api/backgroundoperation/{operation}")).await;
    assert_eq!(status.status, StatusCode::OK);
    let body = status.json();
    assert_eq!(body["backgroundOperationStateCode"], 3);
    assert_eq!(body["backgroundOperationStatusCode"], 30);
    assert!(
        body["CreditOnHold"].is_boolean(),
        "outputs as top-level properties: {body}"
    );

    let row = get(
        &app,
        &format!("{BASE}backgroundoperations({operation})?$select=name,backgroundoperationstatecode,backgroundoperationstatuscode,outputparameters"),
    )
    .await;
    assert_eq!(row.status, StatusCode::OK, "{}", row.text());
    let row = row.json();
    assert_eq!(row["name"], "sample_RecalculateCredit");
    assert_eq!(row["backgroundoperationstatuscode"], 30);
    let outputs: Value = serde_json::from_str(row["outputparameters"].as_str().unwrap()).unwrap();
    assert_eq!(outputs[0]["Key"], "CreditOnHold");

    // Cancel after the end is refused; unknown ids are 404.
    let cancel = send(
        &app,
        Method::DELETE,
        &format!("/api/backgroundoperation/{operation}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::BAD_REQUEST);
    let unknown = get(&app, &format!("/api/backgroundoperation/{MISSING}")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn background_operations_cancel_before_they_start() {
    let org = demo_org(1);
    let app = router(
        org.clone(),
        EmulatorOptions {
            background_delay: Duration::from_millis(300),
            ..EmulatorOptions::default()
        },
    );
    let id = account_ids(&org)[0].clone();
    let accepted = send(
        &app,
        Method::POST,
        &format!("{BASE}sample_RecalculateCredit"),
        &[
            ("content-type", "application/json"),
            ("prefer", "respond-async"),
        ],
        json!({"Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id}})
            .to_string(),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.header("preference-applied"), Some("respond-async"));
    let operation = accepted
        .header("x-ms-dyn-backgroundoperationid")
        .unwrap()
        .to_owned();
    let waiting = get(&app, &format!("/api/backgroundoperation/{operation}"))
        .await
        .json();
    assert_eq!(waiting["backgroundOperationStateCode"], 0);
    let cancel = send(
        &app,
        Method::PATCH,
        &format!("{BASE}backgroundoperations({operation})"),
        &[("content-type", "application/json"), ("if-match", "*")],
        json!({"backgroundoperationstatecode": 2, "backgroundoperationstatuscode": 22}).to_string(),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::NO_CONTENT, "{}", cancel.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done = get(&app, &format!("/api/backgroundoperation/{operation}"))
        .await
        .json();
    assert_eq!(
        (
            done["backgroundOperationStateCode"].clone(),
            done["backgroundOperationStatusCode"].clone()
        ),
        (json!(3), json!(32))
    );
    assert!(
        org.logged_calls().unwrap().is_empty(),
        "a canceled operation never ran"
    );
}

#[tokio::test]
async fn execution_time_limit_answers_429() {
    let options = EmulatorOptions {
        limit_execution_time: Some(Duration::from_millis(10)),
        latency: Duration::from_millis(20),
        window: Duration::from_secs(60),
        ..EmulatorOptions::default()
    };
    let app = router(demo_org(1), options);
    assert_eq!(
        get(&app, &format!("{BASE}WhoAmI")).await.status,
        StatusCode::OK
    );
    let throttled = get(&app, &format!("{BASE}WhoAmI")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.code(), "0x80072321");
    assert!(throttled.text().contains("Combined execution time"));
    assert!(throttled.header("retry-after").is_some());
}

#[tokio::test]
async fn tls_serves_with_the_printed_certificate() {
    let dir = std::env::temp_dir().join(format!("fetchflow-emulator-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("org.db.emulator-cert.pem");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let server = tokio::spawn(crate::emulator::serve(
        listener,
        demo_org(1),
        EmulatorOptions {
            https: true,
            ..EmulatorOptions::default()
        },
        Some(path.clone()),
        move |event| seen.lock().unwrap().push(format!("{event:?}")),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut pem = Vec::new();
    for _ in 0..100 {
        if events.lock().unwrap().len() == 2 {
            pem = std::fs::read(&path).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(String::from_utf8_lossy(&pem).starts_with("-----BEGIN CERTIFICATE-----"));
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let reply = trusting
        .get(format!("https://localhost:{port}/api/data/v9.2/WhoAmI"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), reqwest::StatusCode::OK);
    let body: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("https://localhost:{port}/"))
    );
    // A client that does not trust the certificate cannot talk to it.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("https://localhost:{port}/api/data/v9.2/WhoAmI"))
            .send()
            .await
            .is_err()
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let events = events.lock().unwrap().clone();
    assert!(events[0].starts_with("Certificate("), "{events:?}");
    assert_eq!(events[1], "Listening(\"https\")");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_repeated_idempotency_key_runs_the_api_once() {
    let org = demo_org(1);
    let app = router(org.clone(), EmulatorOptions::default());
    let id = account_ids(&org)[0].clone();
    let body =
        json!({"Target": {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": id}})
            .to_string();
    for _ in 0..2 {
        let reply = send(
            &app,
            Method::POST,
            &format!("{BASE}sample_RecalculateCredit"),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "op-1/rec-1/a0"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let logged = org.logged_calls().unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].idempotency_key, "op-1/rec-1/a0");
    assert_eq!(logged[0].calls, 2);
    assert_eq!(logged[0].params["Target"], format!("account:{id}"));
}

#[tokio::test]
async fn long_urls_are_refused_outside_a_batch_only() {
    let app = router(demo_org(2), EmulatorOptions::default());
    let values: String = (0..1500)
        .map(|n| format!("<value>name {n:05}</value>"))
        .collect();
    let fetch = format!(
        "<fetch><entity name='account'><attribute name='name'/><filter><condition attribute='name' operator='in'>{values}</condition></filter></entity></fetch>"
    );
    let uri = fetch_uri("accounts", &fetch);
    assert!(uri.len() > 32_768 && uri.len() < 65_000, "{}", uri.len());
    let direct = get(&app, &uri).await;
    assert_eq!(direct.status, StatusCode::URI_TOO_LONG);
    assert!(direct.code().starts_with("0x"));
    let part = http_part(
        &format!("GET {uri} HTTP/1.1\r\nAccept: application/json\r\n"),
        None,
    );
    let reply = batch(&app, batch_body("batch_AAA123", &[part]), false).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(
        text.contains("HTTP/1.1 200 OK"),
        "{}",
        &text[..text.len().min(500)]
    );
    assert!(text.contains("\"value\":[]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interop_with_the_connector() {
    use crate::org::dataverse::{DataverseOptions, DataverseOrg, DataverseSettings};
    use crate::org::{ApiCall, Org, OwnerRef, Write};
    let org = demo_org(30);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = EmulatorOptions {
        client_credentials: Some(ClientCredentials {
            client_id: "app".into(),
            client_secret: "pw".into(),
        }),
        ..EmulatorOptions::default()
    };
    let app = router(org.clone(), options);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{address}");
    let settings = DataverseSettings {
        url: url.clone(),
        tenant: "t1".into(),
        client_id: "app".into(),
        client_secret: "pw".into(),
        authority: url.clone(),
    };
    let secrets: Arc<dyn crate::template::SecretSource> = Arc::new(|_: &str| None::<String>);
    let dv = DataverseOrg::connect_with(
        "emu",
        &settings,
        secrets,
        DataverseOptions {
            poll_interval: Duration::from_millis(50),
            max_poll_interval: Duration::from_millis(100),
            ..DataverseOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let fetch = "<fetch count='7'><entity name='account'><attribute name='name'/><attribute name='ownerid'/><attribute name='revenue'/><order attribute='name'/></entity></fetch>";
    let mut request = PageRequest::default();
    let mut remote = Vec::new();
    loop {
        let page = dv
            .query_page(fetch, &request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        remote.extend(page.rows.clone());
        if !page.more_records {
            break;
        }
        request = PageRequest {
            page: Some(request.page.unwrap_or(1) + 1),
            count: None,
            paging_cookie: page.paging_cookie.clone(),
        };
    }
    let mut local = Vec::new();
    let mut request = PageRequest::default();
    loop {
        let page = org.query(fetch, &request).unwrap();
        local.extend(page.rows.clone());
        if !page.more_records {
            break;
        }
        request = PageRequest {
            page: Some(request.page.unwrap_or(1) + 1),
            count: None,
            paging_cookie: page.paging_cookie.clone(),
        };
    }
    assert_eq!(remote, local);
    let ids = account_ids(&org);
    let team = org
        .query(
            "<fetch top='1'><entity name='team'><attribute name='teamid'/></entity></fetch>",
            &PageRequest::default(),
        )
        .unwrap()
        .rows[0]["teamid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut values = crate::org::Row::new();
    values.insert("description".into(), json!("via connector"));
    let mut task = crate::org::Row::new();
    task.insert("subject".into(), json!("t"));
    task.insert(
        "regardingobjectid".into(),
        json!(format!("account:{}", ids[1])),
    );
    let writes = vec![
        Write::Update {
            entity: "account".into(),
            id: ids[0].clone(),
            values: values.clone(),
        },
        Write::Update {
            entity: "account".into(),
            id: ids[2].clone(),
            values,
        },
        Write::Assign {
            entity: "account".into(),
            id: ids[1].clone(),
            owner: OwnerRef {
                entity: "team".into(),
                id: team.clone(),
            },
        },
        Write::SetState {
            entity: "account".into(),
            id: ids[3].clone(),
            statecode: 1,
            statuscode: 2,
        },
        Write::Create {
            entity: "task".into(),
            id: "0e000000-0000-4000-8000-0000000000a1".into(),
            values: task,
        },
        Write::Delete {
            entity: "account".into(),
            id: ids[4].clone(),
        },
        Write::Update {
            entity: "account".into(),
            id: MISSING.into(),
            values: crate::org::Row::new(),
        },
    ];
    let results = dv
        .write_batch(&writes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{results:?}");
    assert!(results[..6].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[6].as_ref().unwrap_err().code, "ObjectDoesNotExist");
    let calls = vec![
        ApiCall {
            api: "sample_RecalculateCredit".into(),
            params: serde_json::from_value(json!({"Target": format!("account:{}", ids[0])}))
                .unwrap(),
            idempotency_key: "k1".into(),
            background: false,
        },
        ApiCall {
            api: "sample_RecalculateCredit".into(),
            params: serde_json::from_value(json!({"Target": format!("account:{}", ids[2])}))
                .unwrap(),
            idempotency_key: "k2".into(),
            background: true,
        },
    ];
    let results = dv
        .call_batch(&calls)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(org.logged_calls().unwrap().len(), 2);
}

const EVERY_ACTION: &str = r#"
name: every-action
select:
  fetchxml: |
    <fetch>
      <entity name="account">
        <attribute name="name"/>
        <attribute name="revenue"/>
        <attribute name="numberofemployees"/>
        <filter>
          <condition attribute="statecode" operator="eq" value="0"/>
        </filter>
      </entity>
    </fetch>
actions:
  - update:
      set:
        description: "Reviewed {{ record.name }} on {{ now }}"
        numberofemployees: "{{ (record.numberofemployees | default(0)) + 1 }}"
  - assign:
      owner: "5e000000-0000-4000-8000-000000000002"
  - create:
      entity: task
      set:
        subject: "Follow up {{ record.name }}"
        regardingobjectid: "account:{{ id }}"
  - call:
      api: sample_RecalculateCredit
      params:
        Target: "account:{{ id }}"
  - call:
      api: sample_RecalculateCredit
      params:
        Target: "account:{{ id }}"
      background: true
    when: (record.numberofemployees | default(0)) % 7 == 0
  - set_state: {statecode: 1, statuscode: 2}
    when: (record.numberofemployees | default(0)) % 3 == 0
  - delete: {}
    when: (record.numberofemployees | default(0)) % 10 == 1
batch:
  size: 25
  concurrency: 3
"#;

/// Issue 6's end-to-end check: every action kind, run by the engine through the connector
/// against the emulator, leaves exactly the rows (every table) that the same workflow leaves
/// when run on the local org directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_action_through_the_connector_leaves_the_rows_a_local_run_leaves() {
    use chrono::TimeZone;

    use crate::compile::{CompileContext, compile_source};
    use crate::engine::{ActionPlan, ExecuteOptions, Outcome, TestClock, execute};
    use crate::org::Org;
    use crate::org::dataverse::{DataverseOptions, DataverseOrg, DataverseSettings};
    use crate::source::SourceFile;
    use crate::store::{
        Mode, NewOperation, OperationStatus, SqliteStateStore, StateStore, Trigger,
    };

    let fixed = chrono::Utc
        .with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
        .unwrap();
    let make = || {
        let org = LocalOrg::in_memory(Catalogue::builtin())
            .unwrap()
            .with_clock(Arc::new(move || fixed));
        org.populate_demo(DemoSize { accounts: 240 }).unwrap();
        Arc::new(org)
    };
    let direct = make();
    let behind = make();
    assert_eq!(
        direct.export("account").unwrap(),
        behind.export("account").unwrap()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = EmulatorOptions {
        client_credentials: Some(ClientCredentials {
            client_id: "app".into(),
            client_secret: "pw".into(),
        }),
        ..EmulatorOptions::default()
    };
    let app = router(behind.clone(), options);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{address}");
    let settings = DataverseSettings {
        url: url.clone(),
        tenant: "t1".into(),
        client_id: "app".into(),
        client_secret: "pw".into(),
        authority: url,
    };
    let secrets: Arc<dyn crate::template::SecretSource> = Arc::new(|_: &str| None::<String>);
    let connector = DataverseOrg::connect_with(
        "emulated",
        &settings,
        secrets,
        DataverseOptions {
            poll_interval: Duration::from_millis(20),
            max_poll_interval: Duration::from_millis(50),
            ..DataverseOptions::default()
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));

    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let outcome = compile_source(
        SourceFile::new(
            std::path::PathBuf::from("every-action.yaml"),
            EVERY_ACTION.to_string(),
        ),
        &context,
    );
    let workflow = outcome
        .workflow
        .unwrap_or_else(|| panic!("{:#?}", outcome.diagnostics));

    let orgs: [Arc<dyn Org>; 2] = [direct.clone(), Arc::new(connector)];
    for org in orgs {
        let store = Arc::new(SqliteStateStore::in_memory().unwrap());
        let clock = Arc::new(TestClock::new(fixed));
        // The same operation id on both sides: created rows get the same deterministic ids.
        let operation = NewOperation {
            id: "op-every-action".into(),
            workflow: workflow.name.clone(),
            workflow_version: workflow.version.clone(),
            git_commit: None,
            connection: "default".into(),
            mode: Mode::Async,
            trigger: Trigger::Manual,
            vars: serde_json::Map::new(),
            now: fixed,
            retry_of: None,
            record_filter: None,
        };
        store.create_operation(&operation, fixed).unwrap();
        store
            .claim(&operation.id, "worker", fixed, Duration::from_secs(30))
            .unwrap();
        let plan = Arc::new(ActionPlan::compile(&workflow, org.catalogue()).unwrap());
        let outcome = execute(
            org,
            store.clone(),
            clock,
            &workflow,
            plan,
            &operation.id,
            "worker",
            ExecuteOptions::default(),
        )
        .await
        .unwrap();
        let Outcome::Finished(finished) = outcome else {
            panic!("the run was suspended");
        };
        assert_eq!(
            finished.status,
            OperationStatus::Succeeded,
            "{:?}: {:#?}",
            finished.error,
            store.failures(&operation.id, 3, None).unwrap().failures
        );
        assert!(finished.counts.succeeded > 100, "{:?}", finished.counts);
    }

    for entity in catalogue.entities() {
        let name = &entity.logical_name;
        let (left, right) = (direct.export(name).unwrap(), behind.export(name).unwrap());
        assert!(
            left == right,
            "table {name} differs between the direct and the connector run"
        );
    }
    let tasks = direct.export("task").unwrap()["task"].len();
    assert!(tasks > 240, "the run created tasks: {tasks}");
    assert_eq!(
        direct.logged_calls().unwrap().len(),
        behind.logged_calls().unwrap().len()
    );
}
