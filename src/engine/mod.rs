//! The engine: run vars (`vars`), the per-run template context, the selection and the
//! per-record actions rendered into writes and calls (`render`, with the column conversions of
//! `convert`). Pure so far: time, ids and vars come in as parameters.

pub mod convert;
pub mod render;
pub mod vars;

pub use render::{
    ActionPlan, ID_NAMESPACE, PlanError, RecordRenderError, RenderedAction, RunContext,
    deterministic_id, render_selection, rfc3339,
};
pub use vars::{VarError, parse_var_arg, resolve_cli_vars, resolve_json_vars};
