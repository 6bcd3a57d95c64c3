//! One HTTP request to the Web API, the way every request of a connection goes: through the
//! connection's [`Budget`], with the cached token (replaced once after a 401), the OData
//! headers, a 2-minute timeout, the whole body read before anything is believed, and the
//! failures turned into [`OrgError`]s that name the connection and the request.
//!
//! Who retries what: this layer retries only the 401 (once, with a new token). A 429 pauses the
//! whole connection for its `Retry-After` and comes back as a retryable [`OrgError`] carrying
//! that wait; 5xx, timeouts, unreachable hosts and unreadable bodies come back retryable
//! without a wait. The engine's `RetryPolicy` then decides whether and when to try again, so a
//! request is never retried by two layers at once. (The exceptions, which have no engine-level
//! equivalent, are documented where they are: the remainder of a `$batch` Dataverse did not
//! answer, and the polls of a background operation.)

use std::error::Error as _;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::org::OrgError;
use crate::org::dataverse::auth::{TokenError, TokenSource};
use crate::org::dataverse::budget::Budget;
use crate::org::dataverse::errors::{THROTTLING, code_name, org_error, parse_error_body};

/// The Web API version every path is relative to.
pub(crate) use crate::org::odata::API_PATH;

/// The `Retry-After` assumed when a 429 does not say (Microsoft's sample falls back to a few
/// seconds, reference §4.4).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A request to send.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The full URL.
    pub(crate) url: String,
    /// What errors call it: method and path, never the query (it may be a whole FetchXML).
    pub(crate) describe: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<(String, Vec<u8>)>,
}

/// A response read to its end.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The HTTP side of one connection.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) connection: String,
    /// `https://contoso.crm.dynamics.com`, no trailing slash.
    pub(crate) org_url: String,
    http: Mutex<reqwest::Client>,
    pub(crate) tokens: TokenSource,
    pub(crate) budget: Budget,
    pub(crate) timeout: Duration,
}

impl Transport {
    pub(crate) fn new(
        connection: &str,
        org_url: &str,
        tokens: TokenSource,
        budget: Budget,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Transport {
            connection: connection.to_string(),
            org_url: org_url.trim_end_matches('/').to_string(),
            http: Mutex::new(build_client()?),
            tokens,
            budget,
            timeout,
        })
    }

    /// A new HTTP client: connections opened on a runtime that has since ended are not
    /// reused (see `DataverseOrg::connect_blocking`).
    pub(crate) fn renew_client(&self) -> Result<(), String> {
        let client = build_client()?;
        *self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = client;
        Ok(())
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        self.http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The URL of a Web API path (`accounts`, `$batch`, ...).
    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("{}{API_PATH}{path}", self.org_url)
    }

    /// A request on a Web API path; `query` is appended but never shown in errors.
    pub(crate) fn request(&self, method: Method, path: &str, query: &str) -> Request {
        let url = if query.is_empty() {
            self.api_url(path)
        } else {
            format!("{}?{query}", self.api_url(path))
        };
        Request {
            describe: format!("{method} {API_PATH}{path}"),
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    fn error(&self, request: &Request, code: &'static str, number: i64, what: String) -> OrgError {
        org_error(&self.connection, &request.describe, code, number, what)
    }

    /// Sends `request` and reads the whole response. 2xx and 4xx other than 401 and 429 are
    /// answers (the caller knows what a 404 means for it); the rest are errors as described in
    /// the module documentation.
    pub(crate) async fn send(&self, request: &Request) -> Result<Answer, OrgError> {
        let mut stale = None;
        loop {
            let permit = self.budget.acquire().await;
            let (token, generation) = self
                .tokens
                .token(&self.client(), stale)
                .await
                .map_err(|error| self.token_error(request, error))?;
            let mut builder = self
                .client()
                .request(request.method.clone(), &request.url)
                .timeout(self.timeout)
                .bearer_auth(token.expose())
                .header("Accept", "application/json")
                .header("OData-MaxVersion", "4.0")
                .header("OData-Version", "4.0");
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            if let Some((content_type, body)) = &request.body {
                builder = builder
                    .header("Content-Type", content_type)
                    .body(body.clone());
            }
            let response = builder.send().await.map_err(|error| {
                let (code, what) = if error.is_timeout() {
                    (
                        "RequestTimeout",
                        format!("no answer within {} s", self.timeout.as_secs()),
                    )
                } else {
                    ("Unreachable", describe_reqwest(&error))
                };
                let mut failed = self.error(request, code, 0, what);
                failed.retryable = true;
                failed
            })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            if let Some(hint) = headers
                .get("x-ms-dop-hint")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<usize>().ok())
            {
                self.budget.hint(hint);
            }
            // The whole body, bounded by the same timeout: a body cut short is an error, never
            // a shorter answer.
            let body = response.bytes().await.map_err(|error| {
                let mut failed = self.error(
                    request,
                    "InvalidOrgResponse",
                    0,
                    format!(
                        "the response body could not be read ({status}): {}",
                        describe_reqwest(&error)
                    ),
                );
                failed.retryable = true;
                failed
            })?;
            let answer = Answer {
                status,
                headers,
                body: body.to_vec(),
            };
            match status {
                401 if stale.is_none() => {
                    // The token may have been revoked or expired early: one new token, once.
                    stale = Some(generation);
                    drop(permit);
                }
                401 => {
                    return Err(self.error(
                        request,
                        "Unauthorized",
                        0,
                        "401 Unauthorized with a fresh token: the application user may be \
                         missing or disabled in this environment"
                            .to_string(),
                    ));
                }
                429 => {
                    let wait = retry_after(&answer).unwrap_or(DEFAULT_RETRY_AFTER);
                    self.budget.throttled(permit.started(), wait);
                    let (number, message) = parse_error_body(&answer.body)
                        .filter(|(number, _)| THROTTLING.contains(number))
                        .unwrap_or((THROTTLING[0], "too many requests".to_string()));
                    return Err(self
                        .error(
                            request,
                            code_name(number),
                            number,
                            format!("429 Too Many Requests: {message}"),
                        )
                        .with_retry_after(wait));
                }
                500..=599 => {
                    let (number, message) = parse_error_body(&answer.body)
                        .unwrap_or((0, "no Dataverse error body".to_string()));
                    let code = if number == 0 {
                        "ServiceUnavailable"
                    } else {
                        code_name(number)
                    };
                    let mut failed = self.error(
                        request,
                        code,
                        number,
                        format!("{status} from the server: {message}"),
                    );
                    failed.retryable = true;
                    failed.retry_after = retry_after(&answer);
                    return Err(failed);
                }
                _ => {
                    if answer.is_success() {
                        self.budget.succeeded();
                    }
                    return Ok(answer);
                }
            }
        }
    }

    /// [`send`](Self::send), tried again on retryable failures up to `tries` times in all:
    /// for the requests no engine retries (connecting, metadata, support checks). A 429 waits
    /// through the connection's pause; other failures back off from 400 ms, doubling.
    pub(crate) async fn send_retrying(
        &self,
        request: &Request,
        tries: u32,
    ) -> Result<Answer, OrgError> {
        let mut failed = 0;
        loop {
            match self.send(request).await {
                Err(error) if error.retryable && failed + 1 < tries => {
                    failed += 1;
                    if error.retry_after.is_none() {
                        tokio::time::sleep(Duration::from_millis(200 << failed.min(6))).await;
                    }
                }
                other => return other,
            }
        }
    }

    fn token_error(&self, request: &Request, error: TokenError) -> OrgError {
        let mut failed = self.error(
            request,
            "AuthenticationFailed",
            0,
            format!("no access token ({}): {}", error.request, error.message),
        );
        failed.retryable = error.transient;
        failed
    }
}

/// Tries of a request that no engine retries (see [`Transport::send_retrying`]).
pub(crate) const SETUP_TRIES: u32 = 4;

/// `Retry-After` in seconds (Dataverse sends seconds; an HTTP date is not used by it).
pub(crate) fn retry_after(answer: &Answer) -> Option<Duration> {
    let value = answer.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64)
}

fn build_client() -> Result<reqwest::Client, String> {
    // No cookie store (reqwest has none without its `cookies` feature): the server affinity
    // cookie is dropped, so requests spread over the environment's web servers (reference
    // §4.4). Redirects are not followed: the bearer token goes only where it was meant to.
    reqwest::Client::builder()
        .user_agent(crate::callback::http::USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(crate::org::dataverse::budget::MAX_IN_FLIGHT)
        .build()
        .map_err(|error| describe_reqwest(&error))
}

/// A reqwest error and its causes, without the URL (it may carry a FetchXML query).
pub(crate) fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "the body was cut short or malformed"
    } else if error.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    };
    parts.push(kind.to_string());
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) && !text.contains("://") {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
