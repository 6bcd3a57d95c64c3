//! The raw model: serde images of workflow files and `fetchflow.yaml`, exactly as written.
//!
//! Types here carry positions (`Spanned`) and no logic. Unknown keys are rejected by serde,
//! duplicate keys by serde-saphyr. The only way to a runnable plan is `compile`.

mod config;
mod parse;
mod spanned_map;
mod workflow;

pub use config::{RawConfig, RawConnection, RawDataverse, RawServer};
pub use parse::{parse_yaml, yaml_path_at};
pub use serde_saphyr::Spanned;
pub use spanned_map::SpannedMap;
pub use workflow::{
    RawAction, RawAssign, RawBatch, RawCall, RawCallback, RawCallbackEvent, RawCreate, RawDelete,
    RawMissed, RawMode, RawOverlap, RawSelect, RawSetState, RawSync, RawTrigger, RawUpdate,
    RawWebhook, RawWorkflow,
};

/// Byte offset of a spanned node in the text it was parsed from (0 when unknown).
pub fn offset_of<T>(node: &Spanned<T>) -> usize {
    let span = node.referenced.span();
    usize::try_from(span.byte_offset().unwrap_or(0)).unwrap_or(usize::MAX)
}

/// Byte length of a spanned node (0 for containers and unknown positions).
pub fn len_of<T>(node: &Spanned<T>) -> usize {
    let span = node.referenced.span();
    usize::try_from(span.byte_len().unwrap_or(0)).unwrap_or(0)
}
