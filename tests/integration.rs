//! The one integration test binary: every file under tests/integration/ is a module of it.

mod integration {
    mod cli;
    mod diagnostics;
    mod hostile;
    mod schema;
    mod tidy;
}
