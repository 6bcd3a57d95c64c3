//! [`HttpSender`]: the [`Sender`] that delivers callbacks over HTTP(S) with reqwest (rustls). The
//! one file of `callback` that touches the network.
//!
//! Decisions:
//! - One shared [`reqwest::Client`] (connection pool, TLS roots) for every delivery.
//! - The request is sent as rendered: method, URL, headers in order (repeated names kept) and the
//!   body bytes unchanged, so `X-Fetchflow-Signature` stays valid. reqwest adds only what HTTP
//!   needs (`Host`, `Content-Length`) and the `User-Agent: fetchflow/<version>`.
//! - Redirects are not followed (a 3xx is reported as it is, and [`classify`] gives up on it): a
//!   signed request is not replayed against a URL the workflow did not name.
//! - Each attempt is bounded by the `timeout` it is given ([`DELIVERY_TIMEOUT`] in production),
//!   connection and TLS handshake included. Only the status line and headers are awaited; the
//!   response body is never read.
//! - Error messages never contain the URL (it may carry a secret): reqwest's errors are stripped
//!   with [`reqwest::Error::without_url`], and the URL is scrubbed from their causes too. Nor do
//!   they contain a header value.
//!
//! [`classify`]: super::backoff::classify

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Method, Url, redirect};

use super::backoff::parse_retry_after;
use super::render::RenderedDelivery;
use super::transport::{
    DELIVERY_TIMEOUT, DeliveryResponse, SendFuture, Sender, TransportError, TransportErrorKind,
};

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("fetchflow/", env!("CARGO_PKG_VERSION"));

/// The HTTP client could not be set up (TLS initialisation, typically).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the callback HTTP client: {message}")]
pub struct HttpSenderError {
    message: String,
}

/// Sends deliveries with one shared reqwest client. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: Client,
}

impl HttpSender {
    /// A sender with rustls, a [`DELIVERY_TIMEOUT`] default timeout, no redirects and the
    /// fetchflow `User-Agent`.
    pub fn new() -> Result<HttpSender, HttpSenderError> {
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .redirect(redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|error| HttpSenderError {
                message: error_chain(&error.without_url()),
            })?;
        Ok(HttpSender { client })
    }

    async fn send_one(
        &self,
        delivery: &RenderedDelivery,
        timeout: Duration,
    ) -> Result<DeliveryResponse, TransportError> {
        let request = self.build(delivery, timeout)?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|error| transport_error(error, &delivery.url))?;
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        Ok(DeliveryResponse {
            status: response.status().as_u16(),
            retry_after,
        })
    }

    /// The request exactly as rendered; anything that cannot be sent is
    /// [`TransportErrorKind::InvalidRequest`] (retrying cannot help).
    fn build(
        &self,
        delivery: &RenderedDelivery,
        timeout: Duration,
    ) -> Result<reqwest::Request, TransportError> {
        let invalid =
            |message: String| TransportError::new(TransportErrorKind::InvalidRequest, message);
        let method = Method::from_bytes(delivery.method.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not an HTTP method", delivery.method)))?;
        // The parse error names the problem, never the URL.
        let url = Url::parse(&delivery.url)
            .map_err(|error| invalid(format!("the callback URL is invalid: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "the callback URL is not an http or https URL".to_string(),
            ));
        }
        let mut headers = HeaderMap::with_capacity(delivery.headers.len());
        for (name, value) in &delivery.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            let header_value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("header `{name}` has an invalid value")))?;
            headers.append(header_name, header_value);
        }
        self.client
            .request(method, url)
            .headers(headers)
            .body(delivery.body.clone())
            .timeout(timeout)
            .build()
            .map_err(|error| invalid(scrubbed(error_chain(&error.without_url()), &delivery.url)))
    }
}

impl Sender for HttpSender {
    fn send<'a>(&'a self, delivery: &'a RenderedDelivery, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_one(delivery, timeout))
    }
}

/// Maps a reqwest error to a [`TransportError`] whose message has no URL in it.
fn transport_error(error: reqwest::Error, url: &str) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_builder() {
        TransportErrorKind::InvalidRequest
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Io
    };
    let message = scrubbed(error_chain(&error.without_url()), url);
    TransportError::new(kind, message)
}

/// The error and its causes, `: `-separated (reqwest's own message alone says only "error
/// sending request"), without repeating a cause that the previous message already ends with.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Defence in depth: a cause from below reqwest could still quote the URL.
fn scrubbed(message: String, url: &str) -> String {
    if url.is_empty() || !message.contains(url) {
        return message;
    }
    message.replace(url, "<callback url>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::render::SecretParts;

    fn delivery(method: &str, url: &str, headers: &[(&str, &str)]) -> RenderedDelivery {
        RenderedDelivery {
            delivery_id: "d-1".to_string(),
            method: method.to_string(),
            url: url.to_string(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: b"{\"a\": 1}".to_vec(),
            secret_parts: SecretParts::default(),
        }
    }

    #[test]
    fn requests_are_built_exactly_as_rendered() {
        let sender = HttpSender::new().unwrap();
        let rendered = delivery(
            "PATCH",
            "https://hooks.example.com/x?token=abc",
            &[
                ("X-Team", "crm"),
                ("X-Multi", "1"),
                ("X-Multi", "2"),
                ("Content-Type", "application/json"),
            ],
        );
        let request = sender.build(&rendered, Duration::from_secs(3)).unwrap();
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(request.url().as_str(), rendered.url);
        assert_eq!(request.headers()["x-team"], "crm");
        let multi: Vec<_> = request.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(
            request.body().and_then(|body| body.as_bytes()),
            Some(&b"{\"a\": 1}"[..])
        );
        assert_eq!(request.timeout(), Some(&Duration::from_secs(3)));
    }

    #[test]
    fn unsendable_requests_give_up_without_quoting_secrets() {
        let sender = HttpSender::new().unwrap();
        for rendered in [
            delivery("BAD METHOD", "https://h.example/", &[]),
            delivery("POST", "https://h.example:99999/?token=s3cr3t", &[]),
            delivery("POST", "ftp://h.example/?token=s3cr3t", &[]),
            delivery("POST", "https://h.example/", &[("Bad Name", "s3cr3t")]),
            delivery("POST", "https://h.example/", &[("X-Ok", "s3cr3t\n")]),
        ] {
            let error = sender.build(&rendered, DELIVERY_TIMEOUT).unwrap_err();
            assert_eq!(error.kind, TransportErrorKind::InvalidRequest, "{error}");
            assert!(!error.message.contains("s3cr3t"), "{error}");
        }
    }

    #[test]
    fn the_url_is_scrubbed_from_messages() {
        assert_eq!(
            scrubbed(
                "failed for https://h/?k=1: refused".to_string(),
                "https://h/?k=1"
            ),
            "failed for <callback url>: refused"
        );
        assert_eq!(scrubbed("refused".to_string(), ""), "refused");
        assert!(USER_AGENT.starts_with("fetchflow/"));
    }
}
