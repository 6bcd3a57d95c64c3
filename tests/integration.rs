//! The one integration test binary: every file under tests/integration/ is a module of it.

mod integration {
    mod callback_delivery;
    mod callback_run;
    mod cli;
    mod conformance;
    mod crash;
    mod dashboard_e2e;
    mod diagnostics;
    mod hostile;
    mod ops_cli;
    mod org_cli;
    mod org_property;
    mod plan_cli;
    mod run_cli;
    mod schema;
    mod serve;
    mod support;
    mod tidy;
}
