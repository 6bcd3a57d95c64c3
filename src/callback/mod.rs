//! Callbacks (DESIGN.md 7.4): what an ended operation sends to the workflow's `callback:` URL,
//! how it is signed, and when a failed delivery is tried again. Pure except [`http`]: no clock,
//! no network, no environment; secrets come through a
//! [`SecretSource`](crate::template::SecretSource), time and randomness are parameters, and HTTP
//! is behind the [`Sender`] trait.
//!
//! The flow, driven by the engine: when an operation ends and [`should_send`] says the callback
//! wants that ending, [`render_delivery`] renders it once (with a fresh delivery id) into a
//! [`RenderedDelivery`], which is stored in the outbox; each attempt sends exactly those bytes
//! through a [`Sender`] with [`DELIVERY_TIMEOUT`], and [`next_step`] turns the result into
//! delivered, retry after a delay, or abandon.
//!
//! - [`hmac`]: HMAC-SHA256 (RFC 2104) and the `X-Fetchflow-Signature: sha256=<hex>` header,
//!   verified in constant time (also used by `serve` for signed webhooks).
//! - [`payload`]: [`OperationOutcome`], the callback template's `operation`, and the default body
//!   (the Dataverse background-operation callback payload plus `workflow` and the counts).
//! - [`render`]: the templated request and its headers.
//! - [`backoff`]: delays, attempt limit, classification of responses.
//! - [`transport`]: the [`Sender`] seam.
//! - [`http`]: [`HttpSender`](http::HttpSender), the reqwest `Sender`: the one file here that
//!   does network I/O.

pub mod backoff;
pub mod hmac;
pub mod http;
pub mod payload;
pub mod render;
pub mod transport;

pub use backoff::{
    MAX_ATTEMPTS, NextStep, Verdict, classify, next_attempt_delay, next_step, parse_retry_after,
};
pub use hmac::{hmac_sha256, signature_header, verify_signature};
pub use payload::{FinalStatus, OperationError, OperationOutcome, format_instant, location_of};
pub use render::{
    CallbackError, DELIVERY_HEADER, RenderedDelivery, RunContext, SIGNATURE_HEADER, SecretParts,
    render_delivery, should_send,
};
pub use transport::{
    DELIVERY_TIMEOUT, DeliveryResponse, SendFuture, Sender, TransportError, TransportErrorKind,
};
