//! The one integration test binary: every file under tests/integration/ is a module of it.

mod integration {
    mod cli;
    mod conformance;
    mod diagnostics;
    mod hostile;
    mod org_cli;
    mod org_property;
    mod plan_cli;
    mod schema;
    mod tidy;
}
