//! `tidemark bench`: in-process ingest benchmark on synthetic monitoring
//! data, reporting throughput, append latency, on-disk size and memory.
//!
//! Data: `--series` series, a third each counters (integer increments),
//! gauges (bounded random walks with 2 decimals) and constants, sampled
//! every 10 s, written time-major (every series' sample at t, then t+10 s),
//! like a scraper would.
//!
//! Invariants:
//! - Each producer thread owns a disjoint slice of the series, so every
//!   series' samples arrive in time order.
//! - Append latency is one batch's `submit` → `wait` return, recorded in a
//!   per-producer hdrhistogram (µs) and merged at the end. Each producer
//!   keeps up to `--inflight` batches unacknowledged, like a pipelining
//!   client; `--inflight 1` measures a strictly synchronous producer.
//! - Memory per series = (VmRSS right after the last acknowledgement −
//!   VmRSS after opening the database and before resolving any series) /
//!   series. It includes the index entry, the head chunks holding the
//!   series' samples and the writer's buffers: what an active series costs
//!   this process.
//! - The data directory is a temporary one, removed afterwards, unless
//!   `--data-dir` is given.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use tidemark_storage::{Db, FsyncMode, Labels, Options, SeriesId, WriteBatch};

use super::{per_sec, progress_bar, ratio, rss};

/// Interval between two samples of a series (10 s, a common scrape interval).
const STEP_MS: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FsyncArg {
    Always,
    Batch,
    Never,
}

impl From<FsyncArg> for FsyncMode {
    fn from(f: FsyncArg) -> Self {
        match f {
            FsyncArg::Always => FsyncMode::Always,
            FsyncArg::Batch => FsyncMode::Batch,
            FsyncArg::Never => FsyncMode::Never,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Data directory to keep; default a temporary one removed afterwards.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    #[arg(long, default_value_t = 1_000)]
    pub samples_per_series: usize,
    /// Producer threads, each owning a slice of the series.
    #[arg(long, default_value_t = 2)]
    pub producers: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    #[arg(long, value_enum, default_value = "batch")]
    pub fsync: FsyncArg,
    /// Batches each producer keeps submitted but unacknowledged (pipelining;
    /// 1 = wait for every batch before the next)
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// Print one JSON object instead of text (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// What `bench --json` prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Samples acknowledged by storage.
    pub samples: u64,
    /// `samples` / ingest seconds (first submit .. last acknowledgement).
    pub samples_per_sec: f64,
    /// On-disk bytes after flush + compact / samples.
    pub bytes_per_sample: f64,
    /// `VmHWM` at the end.
    pub peak_rss_bytes: Option<u64>,
    /// RSS growth over the pre-ingest baseline / series (see module doc).
    pub bytes_per_series: Option<f64>,
    pub p50_append_us: u64,
    pub p99_append_us: u64,
    pub p999_append_us: u64,
    pub max_append_us: u64,
    pub batches: u64,
    pub series: usize,
    pub producers: usize,
    pub fsync: String,
    pub ingest_secs: f64,
    pub resolve_secs: f64,
    /// Head chunk bytes per series as the engine accounts them (the
    /// series' unflushed samples, before the final flush).
    pub head_bytes_per_series: f64,
    /// In-memory index bytes per series (labels, lookup, postings).
    pub index_bytes_per_series: f64,
    pub flush_compact_secs: f64,
    pub disk_bytes: u64,
    /// Samples storage refused (should be 0).
    pub storage_rejected_samples: u64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.series > 0, "--series must be at least 1");
    anyhow::ensure!(args.producers > 0, "--producers must be at least 1");
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let producers = args.producers.min(args.series);

    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("tidemark-bench-")
                .tempdir()
                .context("creating a temporary data directory")?;
            tmp.path().to_path_buf()
        }
    };
    let opts = Options {
        fsync: args.fsync.into(),
        ..Options::default()
    };
    let db = Db::open(&dir, opts).with_context(|| format!("opening {}", dir.display()))?;
    let baseline_rss = rss::mem_status().rss_bytes;

    let resolve_start = Instant::now();
    // Created in batches, one index commit each, like an importer would.
    let mut ids: Vec<SeriesId> = Vec::with_capacity(args.series);
    for first in (0..args.series).step_by(10_000) {
        let labels: Vec<Labels> = (first..args.series.min(first + 10_000))
            .map(series_labels)
            .collect();
        ids.extend(db.resolve_many(&labels).context("creating series")?);
    }
    let resolve_secs = resolve_start.elapsed().as_secs_f64();

    let total = (args.series * args.samples_per_series) as u64;
    let bar = progress_bar(
        total,
        args.json,
        "{bar:40} {human_pos}/{human_len} samples {per_sec} eta {eta}",
    );
    // Aligned to the step and ending now, so the data lands in the current
    // partitions like live ingest would.
    let now = crate::server::now_ms();
    let start_ts = (now - args.samples_per_series as i64 * STEP_MS) / STEP_MS * STEP_MS;

    let ingest_start = Instant::now();
    let results: Vec<anyhow::Result<ProducerResult>> = std::thread::scope(|s| {
        let chunk = ids.len().div_ceil(producers);
        let handles: Vec<_> = ids
            .chunks(chunk)
            .enumerate()
            .map(|(p, slice)| {
                let (db, bar) = (&db, bar.clone());
                let first = p * chunk;
                s.spawn(move || {
                    let plan = Plan {
                        samples_per_series: args.samples_per_series,
                        batch_size: args.batch,
                        inflight: args.inflight.max(1),
                        start_ts,
                    };
                    produce(db, slice, first, &plan, &bar)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread panicked"))
            .collect()
    });
    let ingest_secs = ingest_start.elapsed().as_secs_f64();
    let after_rss = rss::mem_status().rss_bytes;
    bar.finish_and_clear();

    let mut hist = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let (mut samples, mut rejected, mut batches) = (0, 0, 0);
    for r in results {
        let r = r?;
        hist.add(&r.latency_us).expect("same-precision histograms");
        samples += r.accepted;
        rejected += r.rejected;
        batches += r.batches;
    }

    // The engine's own accounting, before the flush empties the head.
    let before_flush = db.stats();
    let fc_start = Instant::now();
    db.flush().context("flushing the head")?;
    db.compact().context("compacting partitions")?;
    let flush_compact_secs = fc_start.elapsed().as_secs_f64();
    let stats = db.stats();
    db.close().context("closing the database")?;

    let bytes_per_series = match (baseline_rss, after_rss) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / args.series as f64),
        _ => None,
    };
    let report = BenchReport {
        samples,
        samples_per_sec: per_sec(samples, ingest_secs),
        bytes_per_sample: ratio(stats.disk_bytes, samples),
        peak_rss_bytes: rss::mem_status().peak_rss_bytes,
        bytes_per_series,
        p50_append_us: hist.value_at_quantile(0.5),
        p99_append_us: hist.value_at_quantile(0.99),
        p999_append_us: hist.value_at_quantile(0.999),
        max_append_us: hist.max(),
        batches,
        series: args.series,
        producers,
        fsync: format!("{:?}", args.fsync).to_lowercase(),
        ingest_secs,
        resolve_secs,
        flush_compact_secs,
        disk_bytes: stats.disk_bytes,
        storage_rejected_samples: rejected,
        head_bytes_per_series: ratio(before_flush.head_bytes as u64, args.series as u64),
        index_bytes_per_series: ratio(before_flush.index_memory_bytes as u64, args.series as u64),
    };
    print_report(&report, args.json)
}

fn print_report(r: &BenchReport, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        super::print_json_line(&mut out, r)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} samples ({} series, {} producers, fsync {}) in {:.2} s: {:.0} samples/s",
        r.samples, r.series, r.producers, r.fsync, r.ingest_secs, r.samples_per_sec
    )?;
    writeln!(
        out,
        "append latency per batch (submit -> ack, {} batches): p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        r.batches, r.p50_append_us, r.p99_append_us, r.p999_append_us, r.max_append_us
    )?;
    writeln!(
        out,
        "on disk: {} bytes = {:.3} bytes/sample (after flush {:.2} s + compact)",
        r.disk_bytes, r.bytes_per_sample, r.flush_compact_secs
    )?;
    if let Some(p) = r.peak_rss_bytes {
        writeln!(out, "peak RSS: {:.1} MiB", p as f64 / (1 << 20) as f64)?;
    }
    if let Some(b) = r.bytes_per_series {
        writeln!(
            out,
            "memory per active series: {b:.0} bytes (RSS growth during ingest / series)"
        )?;
    }
    writeln!(
        out,
        "engine accounting per series: head {:.0} bytes, index {:.0} bytes",
        r.head_bytes_per_series, r.index_bytes_per_series
    )?;
    if r.storage_rejected_samples > 0 {
        writeln!(
            out,
            "storage refused {} samples",
            r.storage_rejected_samples
        )?;
    }
    Ok(())
}

/// Series `i`: kind by `i % 3`, a host label shared by each kind triple.
fn series_labels(i: usize) -> Labels {
    let name = match i % 3 {
        0 => "bench_requests_total",
        1 => "bench_cpu_percent",
        _ => "bench_up",
    };
    Labels::metric(
        name,
        [
            ("host", format!("host-{:05}", i / 3)),
            ("job", "bench".to_string()),
        ],
    )
}

struct ProducerResult {
    latency_us: Histogram<u64>,
    accepted: u64,
    rejected: u64,
    batches: u64,
}

/// SplitMix64: a tiny, good-enough deterministic generator for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What each producer writes.
struct Plan {
    samples_per_series: usize,
    batch_size: usize,
    inflight: usize,
    start_ts: i64,
}

fn produce(
    db: &Db,
    ids: &[SeriesId],
    first_index: usize,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<ProducerResult> {
    let &Plan {
        samples_per_series,
        batch_size,
        inflight,
        start_ts,
    } = plan;
    let mut rng = SplitMix(first_index as u64);
    let mut values: Vec<f64> = (0..ids.len())
        .map(|_| (rng.unit() * 5000.0).round() / 100.0)
        .collect();
    let mut batch = WriteBatch::with_capacity(batch_size);
    let mut res = ProducerResult {
        latency_us: Histogram::new(3).expect("3 significant digits is valid"),
        accepted: 0,
        rejected: 0,
        batches: 0,
    };
    // Batches submitted and not yet acknowledged, with their submit time.
    let mut pending: std::collections::VecDeque<(Instant, usize, tidemark_storage::Ticket)> =
        std::collections::VecDeque::with_capacity(inflight);
    let wait_oldest =
        |pending: &mut std::collections::VecDeque<(Instant, usize, tidemark_storage::Ticket)>,
         res: &mut ProducerResult|
         -> anyhow::Result<()> {
            let Some((t, n, ticket)) = pending.pop_front() else {
                return Ok(());
            };
            let outcome = ticket.wait().context("writing a batch")?;
            let us = t.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
            res.latency_us
                .record(us.max(1))
                .expect("auto-resizing histogram");
            res.accepted += outcome.accepted;
            res.rejected += outcome.rejected();
            res.batches += 1;
            bar.inc(n as u64);
            Ok(())
        };
    let mut send = |batch: &mut WriteBatch, res: &mut ProducerResult| -> anyhow::Result<()> {
        if pending.len() >= inflight {
            wait_oldest(&mut pending, res)?;
        }
        let t = Instant::now();
        let ticket = db.submit(batch).context("submitting a batch")?;
        pending.push_back((t, batch.len(), ticket));
        batch.clear();
        Ok(())
    };
    for step in 0..samples_per_series {
        let ts = start_ts + step as i64 * STEP_MS;
        for (k, (&id, v)) in ids.iter().zip(values.iter_mut()).enumerate() {
            *v = match (first_index + k) % 3 {
                // Counter: bursty integer increments.
                0 => *v + (rng.next() % 100) as f64,
                // Gauge: mean-reverting walk in [0, 100], 2 decimals.
                1 => {
                    let x = *v + 0.1 * (50.0 - *v) + (rng.unit() - 0.5) * 4.0;
                    (x.clamp(0.0, 100.0) * 100.0).round() / 100.0
                }
                // Constant.
                _ => 1.0,
            };
            batch.push(id, ts, *v);
            if batch.len() >= batch_size {
                send(&mut batch, &mut res)?;
            }
        }
    }
    if !batch.is_empty() {
        send(&mut batch, &mut res)?;
    }
    while !pending.is_empty() {
        wait_oldest(&mut pending, &mut res)?;
    }
    Ok(res)
}
