//! The engine: run vars (`vars`), the per-run template context, the selection and the
//! per-record actions rendered into writes and calls (`render`, with the column conversions of
//! `convert`), the executor of operations (`run`), the end of an operation with its callback rendered into
//! the outbox (`finish`) and the outbox's delivery (`deliver`), which
//! read time from a `Clock` (`clock`). `vars`, `render` and `convert` are pure: time, ids and
//! vars come in as parameters; `run` and `deliver` reach the world only through `Org`,
//! `StateStore`, `Sender` and `Clock`.

pub mod clock;
pub mod convert;
pub mod deliver;
pub mod finish;
pub mod launch;
pub mod render;
pub mod run;
pub mod vars;

pub use clock::{Clock, SystemClock, TestClock};
pub use deliver::{
    DeliveryLoop, DeliveryOptions, DeliveryReport, deliver_due, new_delivery, run_delivery_loop,
};
pub use finish::{
    CallbackRendering, NOT_RENDERED, NoSecrets, enqueue_callback, final_status, finish_operation,
    outcome_of, record_render_failure, render_callback,
};
pub use launch::{Launch, LaunchRequest, active_operations, count_selection, launch};
pub use render::{
    ActionPlan, ID_NAMESPACE, PlanError, RecordRenderError, RenderedAction, RunContext,
    deterministic_id, render_selection, rfc3339,
};
pub use run::{
    EngineError, ExecuteOptions, MAX_PAGE_SIZE, Outcome, Progress, ProgressFn, RetryCount,
    RetryObserver, RetryPolicy, execute,
};
pub use vars::{VarError, parse_var_arg, resolve_cli_vars, resolve_json_vars};
