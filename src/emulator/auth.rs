//! Client-credential tokens for tests of OAuth2 clients (reference §5): `POST
//! /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`,
//! `client_secret` and `scope=<resource>/.default` issues an opaque bearer token with
//! `expires_in`; errors in Entra's shape (`error`, `error_description`, `error_codes`). When the
//! emulator has client credentials, the Web API wants `Authorization: Bearer <token>` and
//! answers 401 with a `WWW-Authenticate` bearer challenge otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::emulator::Emulator;
use crate::emulator::error::{DvError, NOT_AUTHENTICATED};
use crate::emulator::request::parse_query;

/// Issued tokens and when they expire.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tokens {
    fn issue(&self, lifetime: Duration) -> String {
        let token = format!(
            "ffemu.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        issued.retain(|_, expiry| *expiry > now);
        issued.insert(token.clone(), now + lifetime);
        token
    }

    /// Accepts a request with a live bearer token; 401 with a challenge otherwise.
    pub(crate) fn check(&self, headers: &HeaderMap, org_url: &str) -> Result<(), DvError> {
        let challenge = format!(
            "Bearer authorization_uri={org_url}/common/oauth2/authorize, resource_id={org_url}/"
        );
        let unauthorized = |message: &str| {
            DvError::new(StatusCode::UNAUTHORIZED, NOT_AUTHENTICATED, message)
                .with_header(header::WWW_AUTHENTICATE, challenge.clone())
        };
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
        else {
            return Err(unauthorized(
                "The request has no bearer token (Authorization: Bearer <token>).",
            ));
        };
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match issued.get(token.trim()) {
            Some(expiry) if *expiry > Instant::now() => Ok(()),
            Some(_) => Err(unauthorized("The bearer token has expired.")),
            None => Err(unauthorized("The bearer token is not valid.")),
        }
    }
}

fn token_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}

/// Compares secrets through their digests, in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(emulator): State<Emulator>,
    Path(_tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form = parse_query(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; the emulator issues \
             client_credentials tokens only.",
        );
    }
    if !field("scope").is_some_and(|scope| scope.ends_with("/.default")) {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a \
             scope value with /.default suffixed to the resource identifier.",
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    if let Some(credentials) = &emulator.options.client_credentials {
        if client_id != credentials.client_id {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            );
        }
        if !same_secret(
            field("client_secret").unwrap_or_default(),
            &credentials.client_secret,
        ) {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request \
                 is the client secret value, not the client secret ID.",
            );
        }
    }
    let lifetime = emulator.options.token_lifetime;
    let access_token = emulator.tokens.issue(lifetime);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    }))
    .into_response()
}
