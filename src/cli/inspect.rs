//! `tidemark inspect DATA_DIR`: what a data directory holds, per partition
//! (time window, series, samples, chunk bytes, file bytes, bytes/sample),
//! plus index and WAL sizes. Opens the directory, so the server must not be
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

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let db = Db::open(&args.data_dir, Options::default())
        .with_context(|| format!("opening {}", args.data_dir.display()))?;
    let parts = db.inspect()?;
    let st = db.stats();
    let samples: u64 = parts.iter().map(|p| p.samples).sum();
    let chunk_bytes: u64 = parts.iter().map(|p| p.chunk_bytes).sum();
    let per = |bytes: u64| super::ratio(bytes, samples);
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
            "bytes_per_sample": per(st.disk_bytes),
            "chunk_bytes_per_sample": per(chunk_bytes),
            "partitions": partitions,
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
            "series {}, samples {samples}; disk {} B = partitions {} + index {} + wal {}",
            st.series, st.disk_bytes, st.partition_bytes, st.index_bytes, st.wal_bytes
        );
        println!(
            "bytes/sample: {:.3} on disk, {:.3} in chunks alone",
            per(st.disk_bytes),
            per(chunk_bytes)
        );
    }
    db.close()?;
    Ok(())
}
