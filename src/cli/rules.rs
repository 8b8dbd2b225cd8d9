//! `tidemark rules check FILE...`: validates Prometheus rule files like
//! `promtool check rules` and prints `FILE: N groups, M rules OK` per good
//! file; every problem of a bad file goes to stderr, one per line, naming
//! file, line, group, rule and (for expressions) the position. Exits
//! non-zero when any file has errors. `--default` checks the embedded
//! default rule pack as well.
//!
//! `tidemark rules test FILE...` runs rule unit tests written for
//! `promtool test rules` and prints `SUCCESS` or each failed expectation;
//! exits non-zero when any fails.

use std::path::PathBuf;

use anyhow::bail;

use crate::rules::{self, RuleErrors, RuleGroup};

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Validate rule files (Prometheus rule-group YAML).
    Check {
        /// Rule files to check.
        #[arg(required_unless_present = "default")]
        files: Vec<PathBuf>,
        /// Also check the embedded default rule pack.
        #[arg(long)]
        default: bool,
    },
    /// Run rule unit tests (promtool's test-file format).
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: &RulesArgs) -> anyhow::Result<()> {
    match &args.command {
        RulesCommand::Check { files, default } => check(files, *default),
        RulesCommand::Test { files } => test(files),
    }
}

fn check(files: &[PathBuf], default: bool) -> anyhow::Result<()> {
    let mut results: Vec<(String, Result<Vec<RuleGroup>, RuleErrors>)> = Vec::new();
    if default {
        results.push((
            rules::DEFAULT_RULES_NAME.to_string(),
            rules::default_groups(),
        ));
    }
    for f in files {
        results.push((f.display().to_string(), rules::load_rule_file(f)));
    }
    let mut bad = 0;
    let total = results.len();
    for (name, result) in results {
        match result {
            Ok(groups) => println!(
                "{name}: {} groups, {} rules OK",
                groups.len(),
                rules::file::count_rules(&groups)
            ),
            Err(errs) => {
                bad += 1;
                for e in &errs.0 {
                    eprintln!("{e}");
                }
                let n = errs.0.len();
                eprintln!("{name}: {n} error{}", if n == 1 { "" } else { "s" });
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {total} rule files have errors");
    }
    Ok(())
}

fn test(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        match rules::unittest::run_test_file(f) {
            Ok(failures) if failures.is_empty() => println!("  SUCCESS\n"),
            Ok(failures) => {
                failed += 1;
                println!("  FAILED:");
                for x in &failures {
                    println!("    [{}] {}", x.group, x.message);
                }
                println!();
            }
            Err(e) => {
                failed += 1;
                println!("  FAILED:\n    {e}\n");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} test files failed", files.len());
    }
    Ok(())
}
