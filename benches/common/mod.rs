//! Helpers shared by the benchmarks: their command line and the peak memory of a process.

use std::path::PathBuf;

/// `--accounts N`, `--no-check`, and the path a benchmark hands to the child process it
/// re-executes itself as (`child_flag PATH`), so a measurement's memory is its own.
pub(crate) struct Args {
    pub(crate) accounts: usize,
    pub(crate) check: bool,
    pub(crate) child: Option<PathBuf>,
}

pub(crate) fn parse_args(child_flag: &str) -> Args {
    let mut args = Args {
        accounts: 1_000_000,
        check: true,
        child: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--no-check" => args.check = false,
            "--accounts" => {
                args.accounts = iter
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(args.accounts);
            }
            flag if flag == child_flag => args.child = iter.next().map(PathBuf::from),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    args
}

/// Peak resident set size of this process (VmHWM), in MB.
pub(crate) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:").and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
