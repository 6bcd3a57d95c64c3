//! The transport seam: [`Sender`] sends one rendered delivery and reports the receiver's status.
//! The engine and `serve` implement it over an HTTP client; tests implement it in memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::render::RenderedDelivery;

/// The time one delivery attempt may take, connection included (issue 4, item 8).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryResponse {
    pub status: u16,
    /// The `Retry-After` header in seconds, when present (see
    /// [`parse_retry_after`](super::backoff::parse_retry_after)).
    pub retry_after: Option<Duration>,
}

/// Why an attempt got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// No response within the timeout.
    Timeout,
    /// DNS, refused or reset connection, TLS handshake.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// The request cannot be sent at all (malformed URL or header): retrying cannot help.
    InvalidRequest,
}

/// A failed attempt. `message` is shown in `ops show` as the delivery's last error, so it must
/// not contain the URL (which may carry a secret): with reqwest, use `error.without_url()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// The boxed future [`Sender::send`] returns, so `Sender` can be used as `dyn Sender`.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DeliveryResponse, TransportError>> + Send + 'a>>;

/// Sends deliveries. An implementation sends `method` to `url` with exactly `headers` and `body`
/// (adding only what HTTP itself needs, such as `Host` and `Content-Length`), does not follow
/// redirects, gives up after `timeout`, and reports any status, success or not, as `Ok`.
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, delivery: &'a RenderedDelivery, timeout: Duration) -> SendFuture<'a>;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::callback::backoff::{NextStep, next_step};

    /// A receiver that answers from a script and records the delivery ids it saw.
    struct Scripted {
        answers: Mutex<Vec<Result<DeliveryResponse, TransportError>>>,
        seen: Mutex<Vec<String>>,
    }

    impl Sender for Scripted {
        fn send<'a>(&'a self, delivery: &'a RenderedDelivery, timeout: Duration) -> SendFuture<'a> {
            assert_eq!(timeout, DELIVERY_TIMEOUT);
            let id = delivery.header("X-Fetchflow-Delivery").unwrap_or_default();
            self.seen.lock().unwrap().push(id.to_string());
            let answer = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { answer })
        }
    }

    fn ready(mut future: SendFuture<'_>) -> Result<DeliveryResponse, TransportError> {
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("the scripted sender is always ready"),
        }
    }

    #[test]
    fn a_dyn_sender_drives_retries_with_the_same_delivery() {
        let status = |status| {
            Ok(DeliveryResponse {
                status,
                retry_after: None,
            })
        };
        let sender = Scripted {
            answers: Mutex::new(vec![
                status(500),
                Err(TransportError::new(
                    TransportErrorKind::Timeout,
                    "timed out",
                )),
                status(500),
                status(204),
            ]),
            seen: Mutex::new(Vec::new()),
        };
        let dyn_sender: &dyn Sender = &sender;
        let delivery = RenderedDelivery {
            delivery_id: "d-1".to_string(),
            method: "POST".to_string(),
            url: "https://h.example/hook".to_string(),
            headers: vec![("X-Fetchflow-Delivery".to_string(), "d-1".to_string())],
            body: b"{}".to_vec(),
            secret_parts: Default::default(),
        };
        let mut steps = Vec::new();
        for attempt in 1.. {
            let result = ready(dyn_sender.send(&delivery, DELIVERY_TIMEOUT));
            let step = next_step(attempt, &result, 0.0);
            steps.push(step);
            if !matches!(step, NextStep::RetryIn(_)) {
                break;
            }
        }
        assert_eq!(
            steps,
            [
                NextStep::RetryIn(Duration::from_millis(2500)),
                NextStep::RetryIn(Duration::from_secs(5)),
                NextStep::RetryIn(Duration::from_secs(10)),
                NextStep::Delivered,
            ]
        );
        assert_eq!(*sender.seen.lock().unwrap(), ["d-1"; 4]);
    }
}
