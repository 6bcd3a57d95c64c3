//! The guard every Web API request passes, in Dataverse's order: authentication, then the
//! service protection limits (reference §4: concurrency at once, requests and execution time
//! over a sliding window; 429 with `Retry-After` seconds and the documented error), then the
//! injected faults (503 from a seeded RNG), then the added latency. Responses carry
//! `x-ms-dop-hint` and the `x-ms-ratelimit-*` debugging headers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::emulator::error::DvError;
use crate::emulator::{Emulator, EmulatorOptions, Rng};
use crate::org::odata::{
    THROTTLE_CONCURRENCY, THROTTLE_EXECUTION_TIME, THROTTLE_REQUESTS, UNEXPECTED,
};

/// Dataverse's default concurrency limit, and the default `x-ms-dop-hint`.
pub(crate) const DATAVERSE_CONCURRENCY: usize = 52;

/// Counters of the limits.
#[derive(Debug)]
pub(crate) struct Throttle {
    in_flight: AtomicUsize,
    /// Start instants of the requests admitted within the window.
    requests: Mutex<VecDeque<Instant>>,
    /// End instants and durations of the requests that ran within the window.
    executions: Mutex<VecDeque<(Instant, Duration)>>,
    faults: Rng,
}

impl Throttle {
    pub(crate) fn new(options: &EmulatorOptions) -> Throttle {
        Throttle {
            in_flight: AtomicUsize::new(0),
            requests: Mutex::new(VecDeque::new()),
            executions: Mutex::new(VecDeque::new()),
            faults: Rng::new(options.seed),
        }
    }
}

/// Holds one place among the concurrent requests until dropped.
struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whole seconds until `instant`, at least 1.
fn seconds_until(instant: Instant, now: Instant) -> u64 {
    let wait = instant.saturating_duration_since(now);
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

fn too_many(number: i64, message: String, retry_after: u64) -> DvError {
    DvError::new(StatusCode::TOO_MANY_REQUESTS, number, message)
        .with_header(header::RETRY_AFTER, retry_after.to_string())
}

pub(crate) async fn guard(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let options = &emulator.options;
    let dop_hint = options
        .dop_hint
        .unwrap_or_else(|| {
            options
                .limit_concurrency
                .unwrap_or(DATAVERSE_CONCURRENCY)
                .min(DATAVERSE_CONCURRENCY) as u32
        })
        .max(1);
    let mut response = match admit(&emulator, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert("x-ms-dop-hint", HeaderValue::from(dop_hint));
    headers.insert("OData-Version", HeaderValue::from_static("4.0"));
    if let Some(limit) = options.limit_requests {
        let now = Instant::now();
        let used = {
            let mut requests = lock(&emulator.throttle.requests);
            expire(&mut requests, now, options.window);
            requests.len()
        };
        headers.insert(
            "x-ms-ratelimit-burst-remaining-xrm-requests",
            HeaderValue::from((limit as usize).saturating_sub(used) as u64),
        );
    }
    response
}

fn expire(requests: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while requests
        .front()
        .is_some_and(|start| now.duration_since(*start) >= window)
    {
        requests.pop_front();
    }
}

async fn admit(emulator: &Emulator, request: Request, next: Next) -> Result<Response, DvError> {
    let options = &emulator.options;
    if options.client_credentials.is_some() {
        emulator
            .tokens
            .check(request.headers(), &emulator.org_url(request.headers()))?;
    }
    let throttle = &emulator.throttle;
    let in_flight = throttle.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let permit = Permit(&throttle.in_flight);
    if let Some(limit) = options.limit_concurrency
        && in_flight > limit
    {
        return Err(too_many(
            THROTTLE_CONCURRENCY,
            format!("Number of concurrent requests exceeded the limit of {limit}."),
            1,
        ));
    }
    let now = Instant::now();
    if let Some(limit) = options.limit_requests {
        let mut requests = lock(&throttle.requests);
        expire(&mut requests, now, options.window);
        if requests.len() >= limit as usize {
            let oldest = requests.front().copied().unwrap_or(now);
            return Err(too_many(
                THROTTLE_REQUESTS,
                format!(
                    "Number of requests exceeded the limit of {limit} over time window of {} \
                     seconds.",
                    options.window.as_secs()
                ),
                seconds_until(oldest + options.window, now),
            ));
        }
        requests.push_back(now);
    }
    if let Some(limit) = options.limit_execution_time {
        let mut executions = lock(&throttle.executions);
        while executions
            .front()
            .is_some_and(|(end, _)| now.duration_since(*end) >= options.window)
        {
            executions.pop_front();
        }
        let used: Duration = executions.iter().map(|(_, duration)| *duration).sum();
        if used >= limit {
            let oldest = executions.front().map_or(now, |(end, _)| *end);
            return Err(too_many(
                THROTTLE_EXECUTION_TIME,
                format!(
                    "Combined execution time of incoming requests exceeded limit of {} \
                     milliseconds over time window of {} seconds. Decrease number of \
                     concurrent requests or reduce the duration of requests and try again \
                     later.",
                    limit.as_millis(),
                    options.window.as_secs()
                ),
                seconds_until(oldest + options.window, now),
            ));
        }
    }
    if options.fail_rate > 0.0 && throttle.faults.next_f64() < options.fail_rate {
        return Err(DvError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            UNEXPECTED,
            "The service is temporarily unavailable (a fault injected by --fail-rate; nothing \
             was done).",
        ));
    }
    // The added latency stands for server time, so it counts as execution time.
    let started = Instant::now();
    if !options.latency.is_zero() {
        tokio::time::sleep(options.latency).await;
    }
    let response = next.run(request).await;
    if options.limit_execution_time.is_some() {
        lock(&throttle.executions).push_back((Instant::now(), started.elapsed()));
    }
    drop(permit);
    Ok(response)
}
