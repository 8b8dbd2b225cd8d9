//! `tidemark import`: stream line protocol or OpenMetrics files into a data
//! directory, then flush and compact and report throughput and size.
//!
//! Invariants:
//! - Files are read in blocks of [`BLOCK_BYTES`] cut at the last newline, so
//!   memory does not grow with the file; a line longer than a block grows
//!   the buffer, up to [`MAX_LINE_BYTES`].
//! - Series are resolved once per distinct raw series key through a local
//!   cache: the storage index is asked only on a miss, no lock per line.
//! - Samples go out in batches of `--batch` with at most [`MAX_IN_FLIGHT`]
//!   submitted batches unacknowledged (pipelining); every ticket is waited
//!   on before the totals are reported.
//! - Malformed lines are counted and the first few reported with file and
//!   line number; they never stop the import.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tidemark_storage::{Db, Labels, Options, SeriesId, Ticket, WriteBatch};

use super::{per_sec, progress_bar, ratio, rss};
use crate::ingest::lineproto::{LineParser, Point, Precision};
use crate::ingest::openmetrics::{OpenMetricsParser, Sample, TimestampUnit};
use crate::ingest::{DEFAULT_MAX_ERRORS, LineError, MAX_LINE_BYTES, ParseSummary};

/// Read size: large enough that per-block costs vanish, small enough to stay
/// cache- and RSS-friendly.
pub const BLOCK_BYTES: usize = 4 << 20;

/// Batches submitted but not yet acknowledged. Enough to keep every shard
/// writer busy while the reader parses the next block.
pub const MAX_IN_FLIGHT: usize = 4;

/// Input format of the imported files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Influx line protocol (`.lp`); timestamps in `--precision`.
    #[value(alias = "influx")]
    Lp,
    /// OpenMetrics text (`.om`); timestamps in seconds.
    #[value(alias = "om")]
    Openmetrics,
    /// Prometheus text format 0.0.4 (`.prom`); timestamps in milliseconds.
    Prometheus,
}

impl Format {
    /// The format a file's extension implies.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "lp" | "line" | "influx" => Some(Format::Lp),
            "om" | "openmetrics" => Some(Format::Openmetrics),
            "prom" => Some(Format::Prometheus),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Data directory (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Input format; by default from each file's extension (.lp, .om, .prom).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Line protocol timestamp unit: ns, us, ms or s.
    #[arg(long, default_value = "ns")]
    pub precision: Precision,
    /// Samples per write batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Print one JSON object instead of text (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Files to import, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// What `import --json` prints.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    /// Samples acknowledged by storage.
    pub samples: u64,
    /// `samples` over the whole run (parse + ingest + flush + compact).
    pub samples_per_sec: f64,
    /// On-disk bytes (data + index + WAL after flush and compact) / samples.
    pub bytes_per_sample: f64,
    /// `VmHWM` of this process at the end.
    pub peak_rss_bytes: Option<u64>,
    /// Lines rejected as malformed.
    pub rejected_lines: u64,
    pub elapsed_secs: f64,
    /// Seconds until the last batch was acknowledged.
    pub ingest_secs: f64,
    /// Seconds spent in flush + compact.
    pub flush_compact_secs: f64,
    /// Samples parsed but refused by storage (too old, unknown series).
    pub storage_rejected_samples: u64,
    pub lines: u64,
    pub series: usize,
    pub disk_bytes: u64,
    pub input_bytes: u64,
    /// The first malformed lines, `file: line N: problem`.
    pub errors: Vec<String>,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    let formats = args
        .files
        .iter()
        .map(|f| {
            args.format
                .or_else(|| Format::from_path(f))
                .with_context(|| {
                    format!(
                        "cannot tell the format of {} from its extension; pass --format",
                        f.display()
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut input_bytes = 0;
    for f in &args.files {
        input_bytes += std::fs::metadata(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .len();
    }

    let start = Instant::now();
    let db = Db::open(&args.data_dir, Options::default())
        .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?;
    let bar = progress_bar(
        input_bytes,
        args.json,
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    );

    let mut importer = Importer::new(&db, args.batch);
    let mut summary = ParseSummary::default();
    let mut errors: Vec<String> = Vec::new();
    for (path, format) in args.files.iter().zip(formats) {
        let file_summary = importer
            .import_file(path, format, args.precision, &bar)
            .with_context(|| format!("importing {}", path.display()))?;
        let room = DEFAULT_MAX_ERRORS.saturating_sub(errors.len());
        errors.extend(
            file_summary
                .errors
                .iter()
                .take(room)
                .map(|e: &LineError| format!("{}: {e}", path.display())),
        );
        summary.merge(file_summary, 0);
    }
    importer.pipeline.finish()?;
    bar.finish_and_clear();
    let ingest_secs = start.elapsed().as_secs_f64();

    let fc_start = Instant::now();
    db.flush().context("flushing the head")?;
    db.compact().context("compacting partitions")?;
    let flush_compact_secs = fc_start.elapsed().as_secs_f64();
    let stats = db.stats();
    let samples = importer.pipeline.accepted;
    let elapsed_secs = start.elapsed().as_secs_f64();
    let report = ImportReport {
        samples,
        samples_per_sec: per_sec(samples, elapsed_secs),
        bytes_per_sample: ratio(stats.disk_bytes, samples),
        peak_rss_bytes: rss::mem_status().peak_rss_bytes,
        rejected_lines: summary.rejected_lines,
        elapsed_secs,
        ingest_secs,
        flush_compact_secs,
        storage_rejected_samples: importer.pipeline.rejected,
        lines: summary.lines_seen,
        series: stats.series,
        disk_bytes: stats.disk_bytes,
        input_bytes,
        errors,
    };
    db.close().context("closing the database")?;
    print_report(&report, args.json)
}

fn print_report(r: &ImportReport, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        super::print_json_line(&mut out, r)?;
        return Ok(());
    }
    writeln!(
        out,
        "imported {} samples ({} series, {} lines) in {:.2} s: {:.0} samples/s \
         (ingest {:.2} s, flush+compact {:.2} s)",
        r.samples,
        r.series,
        r.lines,
        r.elapsed_secs,
        r.samples_per_sec,
        r.ingest_secs,
        r.flush_compact_secs
    )?;
    writeln!(
        out,
        "on disk: {} bytes = {:.3} bytes/sample (data + index + WAL after flush and compact)",
        r.disk_bytes, r.bytes_per_sample
    )?;
    if r.storage_rejected_samples > 0 {
        writeln!(
            out,
            "storage refused {} samples (too old or unknown series)",
            r.storage_rejected_samples
        )?;
    }
    writeln!(out, "rejected lines: {}", r.rejected_lines)?;
    for e in &r.errors {
        writeln!(out, "  {e}")?;
    }
    if r.rejected_lines > r.errors.len() as u64 {
        writeln!(
            out,
            "  ... and {} more",
            r.rejected_lines - r.errors.len() as u64
        )?;
    }
    match r.peak_rss_bytes {
        Some(b) => writeln!(out, "peak RSS: {:.1} MiB", b as f64 / (1 << 20) as f64)?,
        None => writeln!(out, "peak RSS: unknown (no /proc/self/status)")?,
    }
    Ok(())
}

/// FxHash (rustc's hasher): the cache keys are short byte strings from a
/// trusted local file, so a fast non-DoS-resistant hash is the right trade.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("chunk of 8"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type SeriesCache = HashMap<Box<[u8]>, SeriesId, BuildHasherDefault<FxHasher>>;

/// Batches samples and keeps up to [`MAX_IN_FLIGHT`] batches submitted.
pub(crate) struct Pipeline<'db> {
    db: &'db Db,
    batch: WriteBatch,
    batch_size: usize,
    in_flight: VecDeque<Ticket>,
    /// Samples acknowledged by storage so far.
    pub(crate) accepted: u64,
    /// Samples storage refused (too old, unknown series).
    pub(crate) rejected: u64,
}

impl<'db> Pipeline<'db> {
    pub(crate) fn new(db: &'db Db, batch_size: usize) -> Self {
        Self {
            db,
            batch: WriteBatch::with_capacity(batch_size),
            batch_size,
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT + 1),
            accepted: 0,
            rejected: 0,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, id: SeriesId, ts: i64, value: f64) -> anyhow::Result<()> {
        self.batch.push(id, ts, value);
        if self.batch.len() >= self.batch_size {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let ticket = self.db.submit(&self.batch).context("submitting a batch")?;
        self.batch.clear();
        self.in_flight.push_back(ticket);
        Ok(())
    }

    fn wait_oldest(&mut self) -> anyhow::Result<()> {
        if let Some(t) = self.in_flight.pop_front() {
            let outcome = t.wait().context("writing a batch")?;
            self.accepted += outcome.accepted;
            self.rejected += outcome.rejected();
        }
        Ok(())
    }

    /// Sends the partial batch and waits for every ticket.
    pub(crate) fn finish(&mut self) -> anyhow::Result<()> {
        self.send()?;
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        Ok(())
    }
}

struct Importer<'db> {
    db: &'db Db,
    pipeline: Pipeline<'db>,
    cache: SeriesCache,
    key: Vec<u8>,
    name: String,
    /// The first storage error inside a parser callback; once set, the rest
    /// of the input is only parsed, not written.
    failed: Option<anyhow::Error>,
    /// Timestamp for lines without one, fixed per block.
    now_ms: i64,
}

impl<'db> Importer<'db> {
    fn new(db: &'db Db, batch: usize) -> Self {
        Self {
            db,
            pipeline: Pipeline::new(db, batch),
            cache: SeriesCache::default(),
            key: Vec::with_capacity(256),
            name: String::new(),
            failed: None,
            now_ms: 0,
        }
    }

    fn import_file(
        &mut self,
        path: &Path,
        format: Format,
        precision: Precision,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<ParseSummary> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut summary = ParseSummary::default();
        let mut next_line = 1;
        match format {
            Format::Lp => {
                let mut parser = LineParser::new(precision);
                for_each_block(file, bar, |block| {
                    self.now_ms = crate::server::now_ms();
                    let s = parser.parse(block, next_line, |p| self.lp_point(p));
                    next_line += s.lines_seen;
                    summary.merge(s, DEFAULT_MAX_ERRORS);
                    self.failed.take().map_or(Ok(()), Err)
                })?;
            }
            Format::Openmetrics | Format::Prometheus => {
                let unit = if format == Format::Openmetrics {
                    TimestampUnit::Seconds
                } else {
                    TimestampUnit::Milliseconds
                };
                let mut parser = OpenMetricsParser::new(unit);
                for_each_block(file, bar, |block| {
                    self.now_ms = crate::server::now_ms();
                    let s = parser.parse(block, next_line, |p| self.om_sample(p));
                    next_line += s.lines_seen;
                    summary.merge(s, DEFAULT_MAX_ERRORS);
                    self.failed.take().map_or(Ok(()), Err)
                })?;
                for (family, m) in parser.metadata() {
                    self.db
                        .set_metadata(family, &m.kind, &m.help, &m.unit)
                        .context("storing metric metadata")?;
                    // OpenMetrics names a counter family without the
                    // `_total` its samples carry; queries use the sample name.
                    if m.kind == "counter" && !family.ends_with("_total") {
                        self.db
                            .set_metadata(&format!("{family}_total"), &m.kind, &m.help, &m.unit)
                            .context("storing metric metadata")?;
                    }
                }
            }
        }
        Ok(summary)
    }

    fn lp_point(&mut self, p: &Point<'_>) {
        if self.failed.is_some() {
            return;
        }
        let ts = p.timestamp_ms.unwrap_or(self.now_ms);
        for (field, value) in p.fields() {
            self.key.clear();
            self.key.extend_from_slice(p.series_key().as_bytes());
            // 0xff never occurs in UTF-8: the key is unambiguous.
            self.key.push(0xff);
            self.key.extend_from_slice(field.raw().as_bytes());
            let id = match self.cache.get(&self.key[..]) {
                Some(id) => *id,
                None => {
                    self.name.clear();
                    p.metric_name_into(&field, &mut self.name);
                    let labels = Labels::metric(
                        &self.name,
                        p.tags()
                            .map(|(k, v)| (k.unescape().into_owned(), v.unescape().into_owned())),
                    );
                    match self.resolve(labels) {
                        Some(id) => id,
                        None => return,
                    }
                }
            };
            if let Err(e) = self.pipeline.push(id, ts, value) {
                self.failed = Some(e);
                return;
            }
        }
    }

    fn om_sample(&mut self, s: &Sample<'_>) {
        if self.failed.is_some() {
            return;
        }
        self.key.clear();
        self.key.extend_from_slice(s.series_key().as_bytes());
        let id = match self.cache.get(&self.key[..]) {
            Some(id) => *id,
            None => {
                let labels = Labels::metric(
                    s.name(),
                    s.labels()
                        .map(|(k, v)| (k.to_string(), v.unescape().into_owned())),
                );
                match self.resolve(labels) {
                    Some(id) => id,
                    None => return,
                }
            }
        };
        if let Err(e) = self
            .pipeline
            .push(id, s.timestamp_ms.unwrap_or(self.now_ms), s.value)
        {
            self.failed = Some(e);
        }
    }

    /// Cache miss: asks the index and caches the answer under `self.key`.
    fn resolve(&mut self, labels: Labels) -> Option<SeriesId> {
        match self.db.resolve(&labels) {
            Ok(id) => {
                self.cache.insert(self.key.as_slice().into(), id);
                Some(id)
            }
            Err(e) => {
                self.failed =
                    Some(anyhow::Error::new(e).context(format!("creating series {labels}")));
                None
            }
        }
    }
}

/// Reads `file` in blocks that end on a line boundary (the last block may
/// end without one) and calls `f` on each.
fn for_each_block(
    mut file: impl Read,
    bar: &indicatif::ProgressBar,
    mut f: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut filled = 0;
    // Bytes of `buf[..filled]` already searched for a newline in vain.
    let mut searched = 0;
    loop {
        if filled == buf.len() {
            if buf.len() > MAX_LINE_BYTES {
                bail!("a line is longer than {MAX_LINE_BYTES} bytes");
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading input"),
        };
        if n == 0 {
            if filled > 0 {
                f(&buf[..filled])?;
            }
            return Ok(());
        }
        bar.inc(n as u64);
        filled += n;
        if let Some(last) = memchr::memrchr(b'\n', &buf[searched..filled]) {
            let end = searched + last + 1;
            f(&buf[..end])?;
            buf.copy_within(end..filled, 0);
            filled -= end;
            searched = 0;
        } else {
            searched = filled;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn blocks_end_on_line_boundaries_and_cover_everything() {
        let data = b"a 1\nbb 2\nccc 3\nlast-without-newline";
        let mut seen = Vec::new();
        let mut blocks = 0;
        for_each_block(
            Trickle { data, step: 3 },
            &indicatif::ProgressBar::hidden(),
            |b| {
                blocks += 1;
                if blocks < 4 {
                    assert!(b.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(b));
                }
                seen.extend_from_slice(b);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, data);
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("x/data.lp")), Some(Format::Lp));
        assert_eq!(
            Format::from_path(Path::new("data.om")),
            Some(Format::Openmetrics)
        );
        assert_eq!(
            Format::from_path(Path::new("m.prom")),
            Some(Format::Prometheus)
        );
        assert_eq!(Format::from_path(Path::new("data.csv")), None);
    }
}
