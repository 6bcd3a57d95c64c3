//! The `fetchflow` binary: parses arguments and hands over to `fetchflow::cli::run`.

fn main() -> std::process::ExitCode {
    fetchflow::cli::run()
}
