//! `tidemark compact DATA_DIR`: the background maintenance, run by hand on
//! a stopped data directory: seal every partition (fold deltas into block
//! files), build pending rollups, apply retention (age, size cap,
//! per-series overrides from the configuration), and print what it freed.

use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// The data directory (no server may be running on it).
    pub data_dir: PathBuf,
    /// Take `[storage]` options (retention, tiers, partition width) from
    /// this configuration file instead of the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &CompactArgs) -> anyhow::Result<()> {
    let db = super::open_stopped(&args.data_dir, args.config.as_deref())?;
    let before = db.stats().disk_bytes;
    let started = Instant::now();
    let compacted = db.compact()?;
    let rollup = db.rollup()?;
    let now = crate::server::now_ms();
    let retention = db.apply_retention(now)?;
    let tiers_dropped = db.apply_tier_retention(now)?;
    let after = db.stats().disk_bytes;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let out = serde_json::json!({
            "partitions_compacted": compacted,
            "rollup_windows_built": rollup.windows_built,
            "windows_dropped": retention.windows_dropped,
            "windows_rewritten": retention.windows_rewritten,
            "tier_files_dropped": tiers_dropped,
            "disk_bytes_before": before,
            "disk_bytes_after": after,
            "seconds": secs,
        });
        super::print_json_line(&mut std::io::stdout().lock(), &out)?;
    } else {
        println!(
            "compacted {compacted} partition(s), built {} rollup window(s), dropped {} and rewrote {} raw window(s) and {tiers_dropped} tier file(s) past retention; disk {before} -> {after} bytes in {secs:.2} s",
            rollup.windows_built, retention.windows_dropped, retention.windows_rewritten
        );
    }
    db.close()?;
    Ok(())
}
