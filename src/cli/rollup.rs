//! `tidemark rollup DATA_DIR`: builds every pending rollup window by hand
//! on a stopped data directory (the server does it in the background after
//! compaction). Compacts first, so what import or a crash left in deltas is
//! sealed and rolled up too. Prints what it built and the throughput in raw
//! samples rolled up per second (one core: the run is single-threaded).

use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct RollupArgs {
    /// The data directory (no server may be running on it).
    pub data_dir: PathBuf,
    /// Take `[storage]` options (tiers, partition width, out-of-order
    /// window) from this configuration file instead of the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RollupArgs) -> anyhow::Result<()> {
    let db = super::open_stopped(&args.data_dir, args.config.as_deref())?;
    let started = Instant::now();
    let compacted = db.compact()?;
    let compact_secs = started.elapsed().as_secs_f64();
    let r = db.rollup()?;
    let secs = r.elapsed.as_secs_f64();
    let rate = super::per_sec(r.raw_samples, secs);
    if args.json {
        let out = serde_json::json!({
            "partitions_compacted": compacted,
            "compact_seconds": compact_secs,
            "windows_built": r.windows_built,
            "raw_samples": r.raw_samples,
            "points_in": r.points_in,
            "rollup_seconds": secs,
            "raw_samples_per_second": rate,
        });
        super::print_json_line(&mut std::io::stdout().lock(), &out)?;
    } else {
        println!(
            "compacted {compacted} partition(s) in {compact_secs:.2} s; built {} rollup window(s) in {secs:.2} s from {} raw samples and {} finer points ({rate:.0} raw samples/s)",
            r.windows_built, r.raw_samples, r.points_in
        );
    }
    db.close()?;
    Ok(())
}
