//! Sessions, sign-in and CSRF protection of the dashboard.
//!
//! A session is a cookie `ff_session=<id>.<signed-in>.<mac>` (HttpOnly, SameSite=Strict,
//! Path=/): a random id, whether it signed in with the token, and the HMAC-SHA256 of both and
//! of the configured token under a per-process key. It is never the token itself; it stops
//! being valid when the process restarts or the token changes, and nothing is stored on the
//! server. With a configured token, every page needs a signed-in session (else 303 to
//! `/login`); without one (loopback only), pages are open and a session is issued on the
//! first visit, because forms still need it.
//!
//! Every POST must carry the session's CSRF token (`csrf`, the HMAC of the session id under
//! the same key) and must not come from another site: a `Sec-Fetch-Site` other than
//! `same-origin` or `none`, or an `Origin` other than the request's own host, is refused.

use axum::extract::{Form, FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::callback::hmac::hmac_sha256;
use crate::serve::api::{ApiError, same_secret};
use crate::serve::dashboard::{Dashboard, PageError, Shared, given, see_other};

/// The session cookie's name.
pub(super) const COOKIE: &str = "ff_session";

/// A valid session of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(super) id: String,
    pub(super) signed_in: bool,
}

impl Dashboard {
    /// The MAC of a session cookie: over the id, the signed-in flag and the configured token,
    /// so a changed token invalidates every session.
    fn session_mac(&self, id: &str, signed_in: bool) -> String {
        let token = self.serve.token.as_deref().unwrap_or_default();
        let message = format!("session\n{id}\n{}\n{token}", u8::from(signed_in));
        hex(&hmac_sha256(&self.key, message.as_bytes()))
    }

    /// The CSRF token forms of `session` carry.
    pub(super) fn csrf_token(&self, session: &Session) -> String {
        hex(&hmac_sha256(
            &self.key,
            format!("csrf\n{}", session.id).as_bytes(),
        ))
    }

    /// A new session (a new random id).
    fn new_session(&self, signed_in: bool) -> Session {
        Session {
            id: uuid::Uuid::new_v4().simple().to_string(),
            signed_in,
        }
    }

    /// The `Set-Cookie` value of `session`.
    fn cookie(&self, session: &Session) -> String {
        format!(
            "{COOKIE}={}.{}.{}; Path=/; HttpOnly; SameSite=Strict",
            session.id,
            u8::from(session.signed_in),
            self.session_mac(&session.id, session.signed_in)
        )
    }

    /// The request's session, if its cookie is one this process issued (MAC compared in
    /// constant time).
    pub(super) fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        let value = cookie_value(headers, COOKIE)?;
        let mut parts = value.split('.');
        let (id, flag, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.is_empty() {
            return None;
        }
        let signed_in = match flag {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        same_secret(mac.as_bytes(), self.session_mac(id, signed_in).as_bytes()).then(|| Session {
            id: id.to_string(),
            signed_in,
        })
    }

    /// Whether `session` may see the pages: any session without a token, a signed-in one with.
    fn admits(&self, session: &Session) -> bool {
        self.serve.token.is_none() || session.signed_in
    }
}

/// Puts the request's [`Session`] into its extensions, or: with a token and no signed-in
/// session, sends pages to `/login` and refuses the rest (401); without a token, issues a
/// session to a first visitor.
pub(super) async fn require_session(
    State(dashboard): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = dashboard
        .session_of(request.headers())
        .filter(|session| dashboard.admits(session));
    let (session, issued) = match session {
        Some(session) => (session, false),
        None if dashboard.serve.token.is_none() => (dashboard.new_session(false), true),
        None => {
            if request.uri().path().ends_with("/progress") {
                // The live script's JSON: an error it can read, not a page.
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "sign in to the dashboard first",
                )
                .into_response();
            }
            if request.method() == Method::GET {
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |path| path.as_str());
                let location = format!("/login{}", super::query_string(&[("next", Some(path))]));
                return see_other(&location);
            }
            let error = PageError::new(
                StatusCode::UNAUTHORIZED,
                "sign in first: this dashboard needs the API token",
            );
            return dashboard.error_page(None, &error);
        }
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    if issued && let Ok(value) = HeaderValue::from_str(&dashboard.cookie(&session)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A POSTed form that passed the CSRF checks: the session it belongs to and its fields.
pub(crate) struct CheckedForm {
    pub(super) session: Session,
    pub(super) fields: Vec<(String, String)>,
}

impl CheckedForm {
    /// The first value of the field `name`.
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequest<Shared> for CheckedForm {
    type Rejection = Response;

    async fn from_request(request: Request, dashboard: &Shared) -> Result<Self, Self::Rejection> {
        let forbidden = |message: &str| {
            dashboard.error_page(None, &PageError::new(StatusCode::FORBIDDEN, message))
        };
        if let Some(reason) = cross_site(request.headers(), request.uri()) {
            return Err(forbidden(&reason));
        }
        let Some(session) = dashboard.session_of(request.headers()) else {
            return Err(forbidden(
                "this form has no valid session: reload the page and try again",
            ));
        };
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(request, dashboard)
            .await
            .map_err(|rejection| {
                dashboard.error_page(
                    Some(&session),
                    &PageError::new(rejection.status(), rejection.body_text()),
                )
            })?;
        let form = CheckedForm { session, fields };
        let expected = dashboard.csrf_token(&form.session);
        match form.field("csrf") {
            Some(given) if same_secret(given.as_bytes(), expected.as_bytes()) => Ok(form),
            _ => Err(forbidden(
                "this form's CSRF token is missing or stale: reload the page and try again",
            )),
        }
    }
}

/// Why a request must be treated as cross-site, if it must: the browser says so
/// (`Sec-Fetch-Site`), or its `Origin` is not this host.
fn cross_site(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !matches!(site, "same-origin" | "none") {
            return Some(format!(
                "cross-site request refused (Sec-Fetch-Site: {site})"
            ));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(axum::http::uri::Authority::as_str));
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(format!(
            "cross-site request refused (Origin: {origin} is not this host)"
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: a local path only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

/// `GET /login`: the sign-in form (with a token configured; otherwise there is nothing to sign
/// in to, and it goes to the operations).
pub(super) async fn login_page(
    State(dashboard): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    if dashboard.serve.token.is_none() {
        return see_other("/");
    }
    let next = local_path(query.next.as_deref()).to_string();
    login_form(&dashboard, &headers, &next, None, StatusCode::OK)
}

/// The sign-in form, with a session for its CSRF token (issued when the request has none).
fn login_form(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (session, issued) = match dashboard.session_of(headers) {
        Some(session) => (session, false),
        None => (dashboard.new_session(false), true),
    };
    let context = json!({"title": "Sign in", "next": next, "error": error});
    let mut response = dashboard.page("login.html", Some(&session), "login", context);
    *response.status_mut() = status;
    if issued && let Ok(value) = HeaderValue::from_str(&dashboard.cookie(&session)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /login`: with the right token, a new signed-in session and 303 to `next`; otherwise
/// the form again (401).
pub(super) async fn login(
    State(dashboard): State<Shared>,
    headers: HeaderMap,
    form: CheckedForm,
) -> Response {
    let Some(token) = dashboard.serve.token.clone() else {
        return see_other("/");
    };
    let next = local_path(form.field("next")).to_string();
    let given_token = given(form.field("token").map(str::to_string)).unwrap_or_default();
    if !same_secret(given_token.as_bytes(), token.as_bytes()) {
        return login_form(
            &dashboard,
            &headers,
            &next,
            Some("that is not the configured token"),
            StatusCode::UNAUTHORIZED,
        );
    }
    // A new id: a session fixed before sign-in never becomes a signed-in one.
    let session = dashboard.new_session(true);
    let mut response = see_other(&next);
    if let Ok(value) = HeaderValue::from_str(&dashboard.cookie(&session)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: the session cookie is cleared.
pub(super) async fn logout(_form: CheckedForm) -> Response {
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("ff_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
