//! Callback delivery (DESIGN 7.4, issue 4 item 8): sending the outbox's due deliveries through a
//! [`Sender`], logging every attempt in the state store, and retrying with backoff until a
//! receiver accepts the delivery or it is abandoned.
//!
//! - [`new_delivery`] turns a [`RenderedDelivery`] into the outbox row that
//!   [`StateStore::finish`] (or [`StateStore::enqueue_delivery`]) stores with the operation's end.
//! - [`deliver_due`] is one pass: it claims the due deliveries (pushing their due time past the
//!   attempt, so another node or loop leaves them alone), sends them concurrently, and records
//!   each attempt: 2xx → delivered; retryable → pending again at `now` + the backoff of
//!   [`next_step`] (or the receiver's `Retry-After`); a refusal or the [`MAX_ATTEMPTS`]th failure
//!   → abandoned. Every attempt sends the stored bytes, so the `X-Fetchflow-Delivery` id and
//!   the signature are the same on each.
//! - [`DeliveryLoop`] (and [`run_delivery_loop`]) repeats passes every [`TICK`] or when woken,
//!   until shutdown; `serve` and `run --wait` spawn it.
//!
//! Delivery is at least once and survives restarts: all state lives in the store. A process that
//! dies during an attempt leaves the delivery claimed until the hold ([`DeliveryOptions::hold`],
//! longer than any attempt) passes; then it is due again and sent again with the same id, which
//! is what receivers deduplicate on.
//!
//! [`MAX_ATTEMPTS`]: crate::callback::MAX_ATTEMPTS

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, watch};

use crate::callback::{
    DELIVERY_HEADER, DELIVERY_TIMEOUT, DeliveryResponse, NextStep, RenderedDelivery, Sender,
    TransportError, TransportErrorKind, next_step,
};
use crate::engine::clock::Clock;
use crate::store::{AttemptOutcome, Delivery, NewDelivery, SecretParts, StateStore, StoreError};

/// How often the delivery loop looks for due deliveries when nobody wakes it.
pub const TICK: Duration = Duration::from_secs(1);

/// Deliveries claimed and sent concurrently in one pass, by default.
pub const DEFAULT_BATCH: u32 = 16;

/// How much longer than one attempt's timeout a claim holds a delivery.
const HOLD_MARGIN: Duration = Duration::from_secs(30);

/// How much longer than its timeout a [`Sender`] may take before the attempt is cut short here
/// (a sender should enforce the timeout itself; this only bounds one that does not).
const SEND_GRACE: Duration = Duration::from_secs(1);

/// A source of uniform random numbers in `[0, 1)` for the backoff's jitter. Any
/// `Fn() -> f64` is one (tests pass a constant).
pub trait Jitter: Send + Sync {
    fn draw(&self) -> f64;
}

impl<F> Jitter for F
where
    F: Fn() -> f64 + Send + Sync,
{
    fn draw(&self) -> f64 {
        self()
    }
}

/// Jitter from the operating system's random numbers (through UUIDv4).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn draw(&self) -> f64 {
        const BITS: u32 = 53;
        // The low 64 bits of a v4 UUID are random except the two variant bits (62, 63).
        let (_, low) = uuid::Uuid::new_v4().as_u64_pair();
        let mantissa = low & ((1 << BITS) - 1);
        mantissa as f64 / (1u64 << BITS) as f64
    }
}

/// How a pass sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// The time one attempt may take ([`DELIVERY_TIMEOUT`]; tests shorten it).
    pub timeout: Duration,
    /// Deliveries claimed (and sent concurrently) per pass; 0 means [`DEFAULT_BATCH`].
    pub batch: u32,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: DELIVERY_TIMEOUT,
            batch: DEFAULT_BATCH,
        }
    }
}

impl DeliveryOptions {
    /// How long a claim keeps a delivery from other senders: longer than any attempt, so it
    /// lapses only when its sender died.
    pub fn hold(&self) -> Duration {
        self.timeout + SEND_GRACE + HOLD_MARGIN
    }

    fn batch(&self) -> u32 {
        if self.batch == 0 {
            DEFAULT_BATCH
        } else {
            self.batch
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// One entry per attempt made, in the order the deliveries were claimed.
    pub attempts: Vec<AttemptReport>,
}

impl DeliveryReport {
    pub fn delivered(&self) -> usize {
        self.count(|result| matches!(result, AttemptResult::Delivered { .. }))
    }

    pub fn retrying(&self) -> usize {
        self.count(|result| matches!(result, AttemptResult::Retrying { .. }))
    }

    pub fn abandoned(&self) -> usize {
        self.count(|result| matches!(result, AttemptResult::Abandoned { .. }))
    }

    /// Attempts whose result could not be stored; their deliveries are sent again once the
    /// claim's hold has passed.
    pub fn unrecorded(&self) -> usize {
        self.count(|result| matches!(result, AttemptResult::NotRecorded { .. }))
    }

    fn count(&self, which: impl Fn(&AttemptResult) -> bool) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| which(&attempt.result))
            .count()
    }
}

/// One attempt of one delivery. Holds no URL, header or body, so it can be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub delivery_id: String,
    pub operation_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub result: AttemptResult,
}

/// How an attempt ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver accepted it with this status.
    Delivered { status: u16 },
    /// Failed; tried again at `next_attempt_at`.
    Retrying {
        outcome: AttemptOutcome,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed for good: refused by the receiver, unsendable, or out of attempts.
    Abandoned { outcome: AttemptOutcome },
    /// The attempt was made but the store refused its result (`error` is the store's message).
    NotRecorded {
        outcome: AttemptOutcome,
        error: String,
    },
}

/// The outbox row of a rendered callback, ready for [`StateStore::finish`] or
/// [`StateStore::enqueue_delivery`] (which take the operation and the time).
pub fn new_delivery(rendered: &RenderedDelivery) -> NewDelivery {
    NewDelivery {
        id: rendered.delivery_id.clone(),
        url: rendered.url.clone(),
        method: rendered.method.clone(),
        headers: rendered.headers.clone(),
        body: rendered.body.clone(),
        signature: rendered.signature().map(str::to_string),
        secret_parts: SecretParts {
            url: rendered.secret_parts.url,
            body: rendered.secret_parts.body,
            headers: rendered.secret_parts.headers.clone(),
        },
    }
}

/// The request a stored delivery sends: the stored bytes, with its id in `X-Fetchflow-Delivery`
/// (added if the row somehow lacks it, so every attempt carries it).
fn rendered_from(delivery: &Delivery) -> RenderedDelivery {
    let mut headers = delivery.headers.clone();
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(DELIVERY_HEADER))
    {
        headers.push((DELIVERY_HEADER.to_string(), delivery.id.clone()));
    }
    RenderedDelivery {
        delivery_id: delivery.id.clone(),
        method: delivery.method.clone(),
        url: delivery.url.clone(),
        headers,
        body: delivery.body.clone(),
        secret_parts: crate::callback::SecretParts {
            url: delivery.secret_parts.url,
            body: delivery.secret_parts.body,
            headers: delivery.secret_parts.headers.clone(),
        },
    }
}

/// One pass: claims up to `options.batch` due deliveries, sends them concurrently and records
/// every attempt. Fails only when the claim itself fails; an attempt whose result cannot be
/// stored is reported as [`AttemptResult::NotRecorded`]. Needs a Tokio runtime with timers.
pub async fn deliver_due(
    store: &dyn StateStore,
    sender: &dyn Sender,
    clock: &dyn Clock,
    jitter: &dyn Jitter,
    options: &DeliveryOptions,
) -> Result<DeliveryReport, StoreError> {
    let claimed = store.claim_due_deliveries(clock.now(), options.hold(), options.batch())?;
    let attempts = claimed
        .into_iter()
        .map(|delivery| attempt(store, sender, clock, jitter, options, delivery));
    Ok(DeliveryReport {
        attempts: join_all(attempts).await,
    })
}

/// Sends one claimed delivery and records the attempt.
async fn attempt(
    store: &dyn StateStore,
    sender: &dyn Sender,
    clock: &dyn Clock,
    jitter: &dyn Jitter,
    options: &DeliveryOptions,
    delivery: Delivery,
) -> AttemptReport {
    let request = rendered_from(&delivery);
    let result = send_bounded(sender, &request, options.timeout).await;
    let number = delivery.attempts.saturating_add(1);
    let now = clock.now();
    let outcome = match &result {
        Ok(response) => AttemptOutcome::Status(response.status),
        Err(error) => AttemptOutcome::Error(error.message.clone()),
    };
    let recorded = match next_step(number, &result, jitter.draw()) {
        NextStep::Delivered => {
            let status = result.as_ref().map_or(0, |response| response.status);
            store
                .mark_delivered(&delivery.id, status, now)
                .map(|_| AttemptResult::Delivered { status })
        }
        NextStep::RetryIn(delay) => {
            let next_attempt_at = after(now, delay);
            store
                .record_attempt(&delivery.id, &outcome, Some(next_attempt_at), now)
                .map(|_| AttemptResult::Retrying {
                    outcome: outcome.clone(),
                    next_attempt_at,
                })
        }
        NextStep::Abandon => store
            .record_attempt(&delivery.id, &outcome, None, now)
            .map(|_| AttemptResult::Abandoned {
                outcome: outcome.clone(),
            }),
    };
    AttemptReport {
        delivery_id: delivery.id,
        operation_id: delivery.operation_id,
        attempt: number,
        result: recorded.unwrap_or_else(|error| AttemptResult::NotRecorded {
            outcome,
            error: error.to_string(),
        }),
    }
}

/// [`Sender::send`], cut short a little after `timeout` should the sender not enforce it.
async fn send_bounded(
    sender: &dyn Sender,
    request: &RenderedDelivery,
    timeout: Duration,
) -> Result<DeliveryResponse, TransportError> {
    tokio::time::timeout(timeout + SEND_GRACE, sender.send(request, timeout))
        .await
        .unwrap_or_else(|_| {
            Err(TransportError::new(
                TransportErrorKind::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            ))
        })
}

/// `now + delay`, saturating at the largest representable instant.
fn after(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Runs the futures concurrently on the current task and returns their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The background delivery loop of `serve` and `run --wait`: a pass every [`TICK`], at once
/// when [`DeliveryLoop::waker`] is notified (an operation just ended), and again without
/// waiting while passes come back full.
pub struct DeliveryLoop {
    pub store: Arc<dyn StateStore>,
    pub sender: Arc<dyn Sender>,
    pub clock: Arc<dyn Clock>,
    pub jitter: Arc<dyn Jitter>,
    pub options: DeliveryOptions,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DeliveryLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryLoop")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DeliveryLoop {
    /// A loop with random jitter and the default options.
    pub fn new(
        store: Arc<dyn StateStore>,
        sender: Arc<dyn Sender>,
        clock: Arc<dyn Clock>,
    ) -> DeliveryLoop {
        DeliveryLoop {
            store,
            sender,
            clock,
            jitter: Arc::new(RandomJitter),
            options: DeliveryOptions::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notify it to make the loop look for due deliveries now.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Runs passes until `shutdown` becomes `true` (or its sender is dropped), handing each
    /// pass's result to `observe` (for logs and metrics; a failed pass is tried again at the
    /// next tick). A pass in flight at shutdown is dropped: its claimed deliveries become due
    /// again after the hold and are sent again, with the same ids.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        mut observe: impl FnMut(&Result<DeliveryReport, StoreError>) + Send,
    ) {
        let batch = self.options.batch() as usize;
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            let pass = deliver_due(
                &*self.store,
                &*self.sender,
                &*self.clock,
                &*self.jitter,
                &self.options,
            );
            let result = tokio::select! {
                result = pass => result,
                _ = stopped(&mut shutdown) => return,
            };
            let full = result
                .as_ref()
                .is_ok_and(|report| report.attempts.len() >= batch);
            observe(&result);
            if full {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = self.wake.notified() => {}
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
}

/// Resolves once shutdown is signalled or can no longer be.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// [`DeliveryLoop::new`]`(store, sender, clock).run(shutdown, ..)`, ignoring the reports.
pub async fn run_delivery_loop(
    store: Arc<dyn StateStore>,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    DeliveryLoop::new(store, sender, clock)
        .run(shutdown, |_| {})
        .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;
    use crate::callback::SendFuture;
    use crate::engine::clock::TestClock;
    use crate::store::{
        DeliveryStatus, Mode, NewOperation, OperationStatus, SqliteStateStore, Trigger,
    };

    /// Answers from a script (then 200) and records the delivery ids it saw.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<DeliveryResponse, TransportError>>>,
        seen: Mutex<Vec<String>>,
    }

    impl Sender for Scripted {
        fn send<'a>(&'a self, delivery: &'a RenderedDelivery, _: Duration) -> SendFuture<'a> {
            let id = delivery.header(DELIVERY_HEADER).unwrap_or_default();
            self.seen.lock().unwrap().push(id.to_string());
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.is_empty() {
                Ok(status(200))
            } else {
                answers.remove(0)
            };
            Box::pin(async move { answer })
        }
    }

    /// Never answers.
    struct Silent;

    impl Sender for Silent {
        fn send<'a>(&'a self, _: &'a RenderedDelivery, _: Duration) -> SendFuture<'a> {
            Box::pin(std::future::pending())
        }
    }

    fn status(status: u16) -> DeliveryResponse {
        DeliveryResponse {
            status,
            retry_after: None,
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
    }

    /// A store with one finished operation whose callback is in the outbox.
    fn store_with_delivery(id: &str) -> SqliteStateStore {
        let store = SqliteStateStore::in_memory().unwrap();
        let operation = NewOperation {
            id: "op-1".to_string(),
            workflow: "demo".to_string(),
            workflow_version: "v1".to_string(),
            git_commit: None,
            connection: "default".to_string(),
            mode: Mode::Async,
            trigger: Trigger::Manual,
            vars: serde_json::Map::new(),
            now: start(),
            retry_of: None,
            record_filter: None,
        };
        store.create_operation(&operation, start()).unwrap();
        store
            .claim("op-1", "w", start(), Duration::from_secs(60))
            .unwrap();
        let rendered = RenderedDelivery {
            delivery_id: id.to_string(),
            method: "POST".to_string(),
            url: "https://h.example/hook".to_string(),
            headers: vec![(DELIVERY_HEADER.to_string(), id.to_string())],
            body: b"{}".to_vec(),
            secret_parts: Default::default(),
        };
        store
            .finish(
                "op-1",
                "w",
                OperationStatus::Succeeded,
                None,
                Some(&new_delivery(&rendered)),
                start(),
            )
            .unwrap();
        store
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn retries_follow_the_backoff_then_deliver() {
        let store = store_with_delivery("d-1");
        let sender = Scripted {
            answers: Mutex::new(vec![
                Ok(status(503)),
                Err(TransportError::new(TransportErrorKind::Connect, "refused")),
            ]),
            ..Scripted::default()
        };
        let clock = TestClock::new(start());
        let jitter = || 0.0;
        let options = DeliveryOptions::default();
        let pass = || rt().block_on(deliver_due(&store, &sender, &clock, &jitter, &options));

        let first = pass().unwrap();
        assert_eq!(first.retrying(), 1);
        let AttemptResult::Retrying {
            next_attempt_at, ..
        } = first.attempts[0].result
        else {
            panic!("{first:?}");
        };
        assert_eq!(next_attempt_at, start() + TimeDelta::milliseconds(2500));
        // Not due again before the backoff has passed.
        clock.advance(TimeDelta::seconds(2));
        assert_eq!(pass().unwrap(), DeliveryReport::default());
        clock.advance(TimeDelta::seconds(1));
        assert_eq!(pass().unwrap().retrying(), 1);
        clock.advance(TimeDelta::seconds(5));
        let last = pass().unwrap();
        assert_eq!(last.delivered(), 1);
        assert_eq!(last.attempts[0].attempt, 3);
        assert_eq!(*sender.seen.lock().unwrap(), ["d-1"; 3]);

        let log = &store.deliveries("op-1").unwrap()[0];
        assert_eq!(log.delivery.status, DeliveryStatus::Delivered);
        let outcomes: Vec<_> = log.attempts.iter().map(|a| a.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                AttemptOutcome::Status(503),
                AttemptOutcome::Error("refused".to_string()),
                AttemptOutcome::Status(200),
            ]
        );
        clock.advance(TimeDelta::hours(1));
        assert_eq!(pass().unwrap(), DeliveryReport::default());
    }

    #[test]
    fn the_last_allowed_attempt_abandons() {
        let store = store_with_delivery("d-1");
        let sender = Scripted {
            answers: Mutex::new(vec![Ok(status(500)); 40]),
            ..Scripted::default()
        };
        let clock = TestClock::new(start());
        let options = DeliveryOptions::default();
        let mut results = Vec::new();
        for _ in 0..40 {
            let report = rt()
                .block_on(deliver_due(
                    &store,
                    &sender,
                    &clock,
                    &RandomJitter,
                    &options,
                ))
                .unwrap();
            results.extend(report.attempts);
            clock.advance(TimeDelta::hours(2));
        }
        assert_eq!(results.len(), crate::callback::MAX_ATTEMPTS as usize);
        assert!(matches!(
            results.last().unwrap().result,
            AttemptResult::Abandoned { .. }
        ));
        let log = &store.deliveries("op-1").unwrap()[0];
        assert_eq!(log.delivery.status, DeliveryStatus::Abandoned);
        assert_eq!(log.delivery.last_error.as_deref(), Some("HTTP 500"));
    }

    #[test]
    fn a_sender_that_ignores_its_timeout_is_cut_short() {
        let store = store_with_delivery("d-1");
        let clock = TestClock::new(start());
        let options = DeliveryOptions {
            timeout: Duration::from_millis(20),
            batch: 0,
        };
        let report = rt()
            .block_on(deliver_due(&store, &Silent, &clock, &|| 0.5, &options))
            .unwrap();
        assert_eq!(report.retrying(), 1);
        assert!(matches!(
            &report.attempts[0].result,
            AttemptResult::Retrying { outcome: AttemptOutcome::Error(message), .. }
                if message.contains("no response within 20 ms")
        ));
    }

    #[test]
    fn random_jitter_is_in_range() {
        for _ in 0..1000 {
            let draw = RandomJitter.draw();
            assert!((0.0..1.0).contains(&draw), "{draw}");
        }
    }

    #[test]
    fn the_loop_delivers_when_woken_and_stops_on_shutdown() {
        let store: Arc<dyn StateStore> = Arc::new(store_with_delivery("d-1"));
        let sender = Arc::new(Scripted::default());
        let clock = Arc::new(TestClock::new(start()));
        let (stop, shutdown) = watch::channel(false);
        let deliveries = DeliveryLoop::new(Arc::clone(&store), sender.clone(), clock);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reports);
        rt().block_on(async move {
            let running = tokio::spawn(deliveries.run(shutdown, move |result| {
                if let Ok(report) = result {
                    seen.lock().unwrap().push(report.clone());
                }
            }));
            while store.deliveries("op-1").unwrap()[0].delivery.status != DeliveryStatus::Delivered
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.send(true).unwrap();
            running.await.unwrap();
        });
        assert_eq!(*sender.seen.lock().unwrap(), ["d-1"]);
        assert_eq!(reports.lock().unwrap()[0].delivered(), 1);
    }
}
