//! The `tidemark` binary: installs logging, parses arguments, runs the
//! command and reports errors with their causes. Everything else lives in
//! the library (`tidemark::cli`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: large query buffers are reused instead
/// of being returned to the kernel and faulted in again on every query.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = tidemark::cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("TIDEMARK_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        tidemark::cli::LogFormat::Text => logs.init(),
        tidemark::cli::LogFormat::Json => logs.json().init(),
    }
    match tidemark::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed stdout (`| head`) is not worth an error message.
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
