//! The `tidemark` command line: argument definitions and one module per
//! subcommand (`import`, `bench`, `inspect`), plus `rss` for process memory figures.
//!
//! Invariants: this is glue. Subcommands parse and validate arguments with
//! clap, call the library (`ingest`, `tidemark_storage`) and print; errors
//! are `anyhow` here and typed everywhere below. With `--json` a command
//! prints exactly one JSON object on stdout and nothing else there
//! (progress and logs go to stderr).

use clap::{Parser, Subcommand};

pub mod bench;
pub mod compact;
pub mod import;
pub mod inspect;
pub mod notify;
pub mod query;
pub mod rollup;
pub mod rss;
pub mod rules;
pub mod serve;

/// Tidemark: embedded time-series engine and local monitor.
#[derive(Debug, Parser)]
#[command(name = "tidemark", version, about)]
pub struct Cli {
    /// Log lines on stderr: `text` (human-readable) or `json` (one object
    /// per line). The level comes from `TIDEMARK_LOG` (default `warn`,
    /// e.g. `TIDEMARK_LOG=info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import line protocol or OpenMetrics files into a data directory.
    Import(import::ImportArgs),
    /// Measure in-process ingest on synthetic data.
    Bench(bench::BenchArgs),
    /// Show what a data directory holds: partitions, samples, bytes/sample.
    Inspect(inspect::InspectArgs),
    /// Maintenance by hand on a stopped data dir: compact, roll up, expire.
    Compact(compact::CompactArgs),
    /// Run the server: ingest endpoints, Prometheus HTTP API, health.
    Serve(serve::ServeArgs),
    /// Run a PromQL query against a data directory or a server.
    Query(query::QueryArgs),
    /// Build pending rollup tiers by hand on a stopped data directory.
    Rollup(rollup::RollupArgs),
    /// Notifications: `notify test --receiver NAME` sends a test notification.
    Notify(notify::NotifyArgs),
    /// Rule files: `rules check FILE...` validates them.
    Rules(rules::RulesArgs),
    /// Print the default configuration file (every option, documented).
    Config,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Import(args) => import::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Compact(args) => compact::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Rollup(args) => rollup::run(&args),
        Command::Notify(args) => notify::run(&args),
        Command::Rules(args) => rules::run(&args),
        Command::Config => {
            print!("{}", crate::config::DEFAULT_TOML);
            Ok(())
        }
    }
}

/// Opens a data directory no server is running on, for maintenance
/// commands: `[storage]` options from `config` (or the defaults), with no
/// background thread, since the command itself is the maintenance.
pub(crate) fn open_stopped(
    data_dir: &std::path::Path,
    config: Option<&std::path::Path>,
) -> anyhow::Result<tidemark_storage::Db> {
    use anyhow::Context;
    let cfg = match config {
        Some(p) => crate::config::Config::load(p)?,
        None => crate::config::Config::default(),
    };
    let opts = tidemark_storage::Options {
        compact_interval: std::time::Duration::ZERO,
        ..cfg.storage_options()
    };
    tidemark_storage::Db::open(data_dir, opts)
        .with_context(|| format!("opening {}", data_dir.display()))
}

/// A progress bar on stderr, or a hidden one when `hidden` (for `--json`).
pub(crate) fn progress_bar(total: u64, hidden: bool, template: &str) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Writes `value` as one JSON line: the whole stdout of a `--json` command.
pub(crate) fn print_json_line(
    out: &mut impl std::io::Write,
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `n / secs`, or 0 when no time elapsed.
pub(crate) fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// `num / den` as a float, 0 when `den` is 0.
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}
