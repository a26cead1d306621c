//! The `effnetv2` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc as the allocator of the whole process. With its unprefixed symbols the executable
/// exports `malloc`/`free`, so the dynamically loaded PJRT plugin allocates through it too. The
/// CPU plugin allocates one temp buffer of ~100 MB per train step; glibc serves that with a
/// fresh `mmap` each time (its mmap threshold cannot exceed 32 MB), so every step page-faults
/// and zero-fills it again. jemalloc, built with `oversize_threshold:0` (`.cargo/config.toml`),
/// keeps the pages for the next step. To see the difference, compare `effnetv2 bench` with
/// `MALLOC_CONF=oversize_threshold:8388608 effnetv2 bench` (jemalloc's default, which purges such
/// blocks); docs/measurements.md records the measurement.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs the command; an error is printed as its chain of causes (without the backtrace that
/// `anyhow` would add under RUST_BACKTRACE) and exits with status 1.
fn main() -> ExitCode {
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
