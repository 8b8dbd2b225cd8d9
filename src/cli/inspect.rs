//! `tidemark inspect DATA_DIR`: what a data directory holds, per partition
//! (time window, series, samples, chunk bytes, file bytes, bytes/sample),
//! per tier (raw and each rollup tier: partitions, series, points, raw
//! samples covered, bytes, bytes per point and per covered raw sample),
//! plus index and WAL sizes and the top metrics by series count. Opens the directory, so the server must not be
//! running on it.

use std::path::PathBuf;

use anyhow::Context;
use tidemark_storage::{Db, Options};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Metrics listed in the "top metrics by series count" table.
const TOP_METRICS: usize = 10;

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    // The default tiers: a directory built with other tiers shows those
    // as absent (and a tier of the same name at another resolution is
    // refused, never rewritten).
    let opts = Options {
        tiers: tidemark_storage::TierSpec::defaults(),
        compact_interval: std::time::Duration::ZERO,
        ..Options::default()
    };
    let db = Db::open(&args.data_dir, opts)
        .with_context(|| format!("opening {}", args.data_dir.display()))?;
    let parts = db.inspect()?;
    let st = db.stats();
    let samples: u64 = parts.iter().map(|p| p.samples).sum();
    let chunk_bytes: u64 = parts.iter().map(|p| p.chunk_bytes).sum();
    let per = |bytes: u64| super::ratio(bytes, samples);
    let tiers = db.inspect_tiers()?;
    let raw_file_bytes: u64 = parts.iter().map(|p| p.file_bytes()).sum();
    let top = crate::tsdb_status::series_count_by_metric(&db, TOP_METRICS);
    if args.json {
        let partitions: Vec<_> = parts
            .iter()
            .map(|p| {
                serde_json::json!({
                    "start_ms": p.start, "end_ms": p.end,
                    "series": p.series, "chunks": p.chunks, "samples": p.samples,
                    "chunk_bytes": p.chunk_bytes, "block_file_bytes": p.block_file_bytes,
                    "delta_file_bytes": p.delta_file_bytes,
                    "corrupt_chunks": p.corrupt_chunks,
                })
            })
            .collect();
        let out = serde_json::json!({
            "series": st.series,
            "samples": samples,
            "disk_bytes": st.disk_bytes,
            "partition_bytes": st.partition_bytes,
            "chunk_bytes": chunk_bytes,
            "index_bytes": st.index_bytes,
            "wal_bytes": st.wal_bytes,
            "rollup_bytes": st.rollup_bytes,
            "bytes_per_sample": per(st.disk_bytes - st.rollup_bytes),
            "chunk_bytes_per_sample": per(chunk_bytes),
            "partitions": partitions,
            "tiers": tier_json(&parts, raw_file_bytes, samples, &tiers),
            "top_metrics_by_series": top,
        });
        println!("{out}");
    } else {
        println!(
            "{:<15} {:>7} {:>7} {:>11} {:>12} {:>12} {:>8}",
            "partition", "series", "chunks", "samples", "chunk bytes", "file bytes", "B/sample"
        );
        for p in &parts {
            println!(
                "{:<15} {:>7} {:>7} {:>11} {:>12} {:>12} {:>8.3}",
                p.start,
                p.series,
                p.chunks,
                p.samples,
                p.chunk_bytes,
                p.file_bytes(),
                super::ratio(p.file_bytes(), p.samples)
            );
            if p.corrupt_chunks > 0 {
                println!("  {} corrupt chunk(s)", p.corrupt_chunks);
            }
        }
        println!(
            "series {}, samples {samples}; disk {} B = partitions {} + rollup tiers {} + index {} + wal {}",
            st.series,
            st.disk_bytes,
            st.partition_bytes,
            st.rollup_bytes,
            st.index_bytes,
            st.wal_bytes
        );
        println!(
            "raw bytes/sample: {:.3} on disk (tiers excluded), {:.3} in chunks alone",
            per(st.disk_bytes - st.rollup_bytes),
            per(chunk_bytes)
        );
        println!(
            "{:<6} {:>10} {:>7} {:>12} {:>14} {:>12} {:>10} {:>12}",
            "tier",
            "partitions",
            "series",
            "points",
            "covers samples",
            "bytes",
            "B/point",
            "B/covered"
        );
        let raw_series = parts.iter().map(|p| p.series).max().unwrap_or(0);
        println!(
            "{:<6} {:>10} {:>7} {:>12} {:>14} {:>12} {:>10.3} {:>12.3}",
            "raw",
            parts.len(),
            raw_series,
            samples,
            samples,
            raw_file_bytes,
            super::ratio(raw_file_bytes, samples),
            super::ratio(raw_file_bytes, samples)
        );
        for t in &tiers {
            println!(
                "{:<6} {:>10} {:>7} {:>12} {:>14} {:>12} {:>10.3} {:>12.4}",
                t.name,
                t.partitions,
                t.series,
                t.points,
                t.covered_samples,
                t.bytes,
                super::ratio(t.bytes, t.points),
                super::ratio(t.bytes, t.covered_samples)
            );
            if t.corrupt > 0 {
                println!("  {} corrupt series blob(s)", t.corrupt);
            }
        }
        println!("top metrics by series count:");
        for m in &top {
            println!("  {:>9}  {}", m.value, m.name);
        }
    }
    db.close()?;
    Ok(())
}

/// The per-tier figures (raw first) as JSON.
fn tier_json(
    parts: &[tidemark_storage::PartitionInfo],
    raw_bytes: u64,
    samples: u64,
    tiers: &[tidemark_storage::TierInspect],
) -> serde_json::Value {
    let mut out = vec![serde_json::json!({
        "name": "raw", "partitions": parts.len(),
        "series": parts.iter().map(|p| p.series).max().unwrap_or(0),
        "points": samples, "covered_samples": samples, "bytes": raw_bytes,
        "bytes_per_point": super::ratio(raw_bytes, samples),
        "bytes_per_covered_sample": super::ratio(raw_bytes, samples),
    })];
    out.extend(tiers.iter().map(|t| {
        serde_json::json!({
            "name": t.name, "resolution_ms": t.resolution_ms, "partitions": t.partitions,
            "series": t.series, "points": t.points, "covered_samples": t.covered_samples,
            "bytes": t.bytes, "first_start_ms": t.first_start, "last_start_ms": t.last_start,
            "bytes_per_point": super::ratio(t.bytes, t.points),
            "bytes_per_covered_sample": super::ratio(t.bytes, t.covered_samples),
            "corrupt": t.corrupt,
        })
    }));
    serde_json::Value::Array(out)
}
