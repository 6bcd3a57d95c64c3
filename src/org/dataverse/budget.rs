//! The service-protection budget of one connection (reference §4), shared by every operation
//! running on it, because Dataverse counts its limits per user and every operation on a
//! connection is the same application user.
//!
//! - In flight: at most `limit` requests, `limit` ≤ the server's `x-ms-dop-hint` (once seen)
//!   and never above [`MAX_IN_FLIGHT`] (52, the documented concurrency limit).
//! - Adaptive (AIMD): each success adds `1/limit` (one more request in flight per round of
//!   successes), each 429 halves it, at most once per round: 429s of requests that left
//!   before the last decrease do not decrease it again.
//! - Pause: a 429's `Retry-After` pauses the whole connection; no request leaves before the
//!   pause ends, whoever asks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The documented concurrent-request limit per user and server.
pub const MAX_IN_FLIGHT: usize = 52;

/// How many requests may be in flight before the server's hint is known.
pub const INITIAL_IN_FLIGHT: usize = 4;

#[derive(Debug)]
struct State {
    /// The current window; requests in flight are at most `floor(limit)`.
    limit: f64,
    /// The ceiling: the server's `x-ms-dop-hint` (or the configured maximum), never above 52.
    ceiling: f64,
    /// The configured maximum (≤ 52): a hint never lifts the ceiling above it.
    maximum: f64,
    in_flight: usize,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
    /// A hint was seen: later hints only move the ceiling.
    hinted: bool,
    /// The highest number of requests in flight so far (tests, diagnostics).
    peak: usize,
    throttled: u64,
}

/// One connection's budget. See the module documentation.
#[derive(Debug)]
pub(crate) struct Budget {
    state: Mutex<State>,
    released: Notify,
}

/// A slot in flight; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    budget: &'a Budget,
    started: Instant,
}

impl Permit<'_> {
    pub(crate) fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.budget.released.notify_waiters();
    }
}

/// What the budget looks like now (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSnapshot {
    pub limit: f64,
    pub ceiling: f64,
    pub in_flight: usize,
    pub peak: usize,
    pub throttled: u64,
    pub paused_for: Option<Duration>,
}

impl Budget {
    /// A budget starting at `initial` requests in flight, growing up to `maximum` (both capped
    /// at [`MAX_IN_FLIGHT`]) until the server's hint says otherwise.
    pub(crate) fn new(initial: usize, maximum: usize) -> Self {
        let ceiling = maximum.clamp(1, MAX_IN_FLIGHT) as f64;
        Budget {
            state: Mutex::new(State {
                limit: (initial.max(1) as f64).min(ceiling),
                ceiling,
                maximum: ceiling,
                in_flight: 0,
                paused_until: None,
                last_decrease: None,
                hinted: false,
                peak: 0,
                throttled: 0,
            }),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the pause to end and for a free slot.
    pub(crate) async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            let released = self.released.notified();
            let pause = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        state.paused_until = None;
                        if state.in_flight < (state.limit.floor() as usize).max(1) {
                            state.in_flight += 1;
                            state.peak = state.peak.max(state.in_flight);
                            return Permit {
                                budget: self,
                                started: now,
                            };
                        }
                        None
                    }
                }
            };
            match pause {
                Some(wait) => tokio::time::sleep(wait).await,
                None => released.await,
            }
        }
    }

    /// The server's recommended degree of parallelism (`x-ms-dop-hint`): it becomes the
    /// ceiling. The first hint also sets the window, so a run starts at the server's pace.
    pub(crate) fn hint(&self, dop: usize) {
        let mut state = self.lock();
        let ceiling = (dop.clamp(1, MAX_IN_FLIGHT) as f64).min(state.maximum);
        let changed = (state.ceiling - ceiling).abs() > f64::EPSILON || !state.hinted;
        if !changed {
            return;
        }
        state.ceiling = ceiling;
        state.limit = if state.hinted || state.last_decrease.is_some() {
            state.limit.min(ceiling)
        } else {
            ceiling
        };
        state.hinted = true;
        drop(state);
        self.released.notify_waiters();
    }

    /// A request that left at `started` succeeded: additive increase.
    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        let grown = state.limit + 1.0 / state.limit.max(1.0);
        let grew = grown.floor() > state.limit.floor();
        state.limit = grown.min(state.ceiling);
        drop(state);
        if grew {
            self.released.notify_waiters();
        }
    }

    /// A request that left at `started` was throttled with `retry_after`: pause the whole
    /// connection and halve the window (once per round).
    pub(crate) fn throttled(&self, started: Instant, retry_after: Duration) {
        let mut state = self.lock();
        let now = Instant::now();
        state.throttled += 1;
        let until = now + retry_after;
        if state.paused_until.is_none_or(|paused| paused < until) {
            state.paused_until = Some(until);
        }
        if state.last_decrease.is_none_or(|last| started >= last) {
            state.limit = (state.limit / 2.0).max(1.0);
            state.last_decrease = Some(now);
        }
    }

    pub(crate) fn snapshot(&self) -> BudgetSnapshot {
        let state = self.lock();
        let now = Instant::now();
        BudgetSnapshot {
            limit: state.limit,
            ceiling: state.ceiling,
            in_flight: state.in_flight,
            peak: state.peak,
            throttled: state.throttled,
            paused_for: state
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until - now),
        }
    }
}
