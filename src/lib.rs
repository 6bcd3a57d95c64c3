//! fetchflow: declarative, git-managed bulk record jobs for Dynamics 365 / Dataverse.
//!
//! The pipeline is `load` (the only file I/O) → `model` (serde image of the YAML) →
//! `compile` (every check, every diagnostic in one pass) → a `compile::Workflow` plan.
//! `fetchxml`, `metadata`, `template` and `schedule` are pure building blocks used by `compile`.
//! `cli` is the thin command-line edge. See ARCHITECTURE.md for the map and its invariants.

pub mod callback;
pub mod cli;
pub mod compile;
pub mod config;
pub mod diagnostics;
pub mod emulator;
pub mod engine;
pub mod fetchxml;
pub mod load;
pub mod metadata;
pub mod model;
pub mod org;
pub mod schedule;
pub mod schema;
pub mod serve;
pub mod source;
pub mod store;
pub mod template;
pub mod view;
