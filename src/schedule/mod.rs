//! Schedules: cron expressions and IANA time zones checked into located problems, and the
//! instants a schedule fires at, as pure functions of a given instant (no I/O, no clock).
//!
//! `parse_cron` and `parse_timezone` are what `compile` calls; `Schedule::next_fire` is what
//! the engine's timer asks; `Fire::instant_key` is the identity a fire is claimed under.

mod cron;
mod field;
mod fire;
mod timezone;

pub use cron::{CronSpec, parse_cron};
pub use fire::{Fire, FiresAfter, Schedule};
pub use timezone::parse_timezone;
