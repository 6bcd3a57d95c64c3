//! OAuth2 client credentials (reference §5): the token request against
//! `<authority>/<tenant>/oauth2/v2.0/token` with scope `<url>/.default`, and the cached token,
//! refreshed before its `expires_in` runs out and on demand after a 401.
//!
//! Secrets: the client secret and the access token live in [`Secret`], whose `Debug` prints
//! `<redacted>`; no error built here contains either (the token endpoint's `error_description`
//! is kept, it names the problem, e.g. `AADSTS7000215: Invalid client secret provided`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::org::dataverse::encode::form_encode;

/// A value that must never be shown: `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How long before `expires_in` runs out a token is replaced: a quarter of its lifetime, at most
/// five minutes, so a request never leaves with a token that expires on the way.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(300))
}

/// Why no token could be obtained. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    /// `POST <token URL>`: the request, without query (there is none) and without body.
    pub(crate) request: String,
    pub(crate) message: String,
    /// The identity provider could not be reached or answered 5xx (retrying may help), as
    /// opposed to refusing the credentials.
    pub(crate) transient: bool,
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    /// When it is replaced (its expiry minus the margin).
    refresh_at: Instant,
    /// Counts tokens obtained, so that one 401 replaces the token once, not once per request.
    generation: u64,
}

/// The client-credentials token of one connection: fetched on first use, shared by every
/// request, refreshed by one request at a time.
#[derive(Debug)]
pub(crate) struct TokenSource {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    current: Mutex<Option<Token>>,
}

impl TokenSource {
    pub(crate) fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        client_secret: Secret,
        org_url: &str,
    ) -> Self {
        TokenSource {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority.trim_end_matches('/'),
                tenant
            ),
            client_id: client_id.to_string(),
            client_secret,
            scope: format!("{}/.default", org_url.trim_end_matches('/')),
            current: Mutex::new(None),
        }
    }

    /// A valid token and its generation; fetches a new one when there is none, it is about to
    /// expire, or `stale` names the generation a 401 rejected.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        stale: Option<u64>,
    ) -> Result<(Secret, u64), TokenError> {
        // The lock is held across the token request: concurrent requests wait for the one
        // refresh instead of each asking the identity provider.
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && Instant::now() < token.refresh_at
            && stale != Some(token.generation)
        {
            return Ok((token.value.clone(), token.generation));
        }
        let generation = current.as_ref().map_or(1, |token| token.generation + 1);
        let (value, lifetime) = self.request(http).await?;
        let token = Token {
            value,
            refresh_at: Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime)),
            generation,
        };
        let answer = (token.value.clone(), generation);
        *current = Some(token);
        Ok(answer)
    }

    async fn request(&self, http: &reqwest::Client) -> Result<(Secret, Duration), TokenError> {
        let request = format!("POST {}", self.token_url);
        let fail = |message: String, transient: bool| TokenError {
            request: request.clone(),
            message,
            transient,
        };
        let body = form_encode(&[
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ]);
        let response = http
            .post(&self.token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .timeout(Duration::from_secs(30))
            .body(body)
            .send()
            .await
            .map_err(|error| fail(super::transport::describe_reqwest(&error), true))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| {
            fail(
                format!(
                    "the response could not be read: {}",
                    super::transport::describe_reqwest(&error)
                ),
                true,
            )
        })?;
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let described = json
                .as_ref()
                .and_then(|json| {
                    let error = json.get("error")?.as_str()?;
                    let description = json
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(|text| text.lines().next().unwrap_or(text).to_string());
                    Some(match description {
                        Some(description) => format!("{error}: {description}"),
                        None => error.to_string(),
                    })
                })
                .unwrap_or_else(|| "no OAuth error in the response".to_string());
            let hint = if matches!(status.as_u16(), 400 | 401) {
                "; check the connection's tenant, client_id and client_secret"
            } else {
                ""
            };
            return Err(fail(
                format!(
                    "the identity provider refused the token request ({status}): {described}{hint}"
                ),
                status.is_server_error() || status.as_u16() == 429,
            ));
        }
        let json = json.ok_or_else(|| {
            fail(
                "the token response is not JSON (truncated or not a token endpoint)".to_string(),
                true,
            )
        })?;
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| fail("the token response has no access_token".to_string(), false))?;
        // `expires_in` is a number in the v2.0 endpoint, a string in older ones.
        let lifetime = match json.get("expires_in") {
            Some(Value::Number(number)) => number.as_u64(),
            Some(Value::String(text)) => text.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| fail("the token response has no expires_in".to_string(), false))?;
        Ok((Secret::new(token), Duration::from_secs(lifetime)))
    }
}
