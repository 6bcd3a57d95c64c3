//! The callback outbox: `Delivery` (a rendered callback waiting to be sent, or sent) and its
//! `DeliveryAttempt` log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    /// A receiver answered with a success status.
    Delivered,
    /// Given up on after the last allowed attempt.
    Abandoned,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "abandoned" => Ok(DeliveryStatus::Abandoned),
            _ => Err(format!("unknown delivery status `{text}`")),
        }
    }
}

/// Which parts of a delivery were rendered by a template that reads a secret: they are stored
/// (they must be sent as rendered) but never shown, and `Debug` hides them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretParts {
    pub url: bool,
    pub body: bool,
    /// Header names, as in `headers`.
    pub headers: Vec<String>,
}

impl SecretParts {
    /// Whether the header `name` holds a secret (names compare case-insensitively).
    pub fn is_secret_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|secret| secret.eq_ignore_ascii_case(name))
    }
}

/// A callback rendered once when its operation ended, stored before anything is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// A UUID: the `X-Fetchflow-Delivery` header, the same on every attempt.
    pub id: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    /// The exact bytes sent (and signed).
    pub body: Vec<u8>,
    /// `sha256=<hex>` of the body, when the callback has a secret.
    pub signature: Option<String>,
    pub secret_parts: SecretParts,
}

/// A delivery as stored in the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub operation_id: String,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub signature: Option<String>,
    pub secret_parts: SecretParts,
    pub attempts: u32,
    /// When the next attempt is due; `None` once delivered or abandoned.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub status: DeliveryStatus,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    /// The URL as it may be shown: `<redacted>` when a secret went into it.
    pub fn shown_url(&self) -> &str {
        shown(&self.url, self.secret_parts.url)
    }

    /// The headers as they may be shown, secret values replaced by `<redacted>`.
    pub fn shown_headers(&self) -> Vec<(&str, &str)> {
        shown_headers(&self.headers, &self.secret_parts)
    }
}

const REDACTED: &str = "<redacted>";

fn shown(value: &str, secret: bool) -> &str {
    if secret { REDACTED } else { value }
}

fn shown_headers<'a>(
    headers: &'a [(String, String)],
    secret_parts: &SecretParts,
) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = shown(value, secret_parts.is_secret_header(name));
            (name.as_str(), value)
        })
        .collect()
}

fn shown_body(body: &[u8], secret: bool) -> String {
    if secret {
        format!("<redacted: {} bytes>", body.len())
    } else {
        String::from_utf8_lossy(body).into_owned()
    }
}

impl fmt::Debug for NewDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDelivery")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("url", &shown(&self.url, self.secret_parts.url))
            .field("headers", &shown_headers(&self.headers, &self.secret_parts))
            .field("body", &shown_body(&self.body, self.secret_parts.body))
            .field("signature", &self.signature)
            .finish()
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("operation_id", &self.operation_id)
            .field("method", &self.method)
            .field("url", &self.shown_url())
            .field("headers", &self.shown_headers())
            .field("body", &shown_body(&self.body, self.secret_parts.body))
            .field("signature", &self.signature)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("last_error", &self.last_error)
            .field("delivered_at", &self.delivered_at)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// How one attempt ended: the receiver's HTTP status, or an error before any status (connect,
/// timeout, TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Status(u16),
    Error(String),
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptOutcome::Status(code) => write!(f, "HTTP {code}"),
            AttemptOutcome::Error(message) => f.write_str(message),
        }
    }
}

/// One row of a delivery's attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
}

/// A delivery with its attempt log, oldest attempt first (what `ops show` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLog {
    pub delivery: Delivery,
    pub attempts: Vec<DeliveryAttempt>,
}
