//! Downsampling tiers: per series and bucket, `min, max, sum, count, first,
//! last, increase` (see [`RollupPoint`]), in tiers such as `1m` and `1h`
//! beside the raw partitions. Layout: `<data_dir>/<tier name>/<start>-<gen>.tmr`
//! (see `file`).
//!
//! The first tier is built from sealed raw partitions (a window compaction
//! has written a block file for and that holds no newer delta), each next
//! tier from the tier before it. [`Rollups::run`] (called by the background
//! thread after compaction, by `Db::rollup` and `tidemark rollup`) builds
//! every target window one of whose source windows is new or has a
//! generation other than the one recorded in the target file: late data
//! recompacts a raw window to a new generation, which rebuilds its 1m
//! window, which rebuilds the enclosing 1h window.
//!
//! Invariants:
//! - A target window's buckets never straddle source windows (the source
//!   width is a multiple of the target resolution; checked at open), so a
//!   window is rebuilt from its sources alone, bucket for bucket.
//! - Source windows recorded in a target file but gone from the source tier
//!   (its retention is shorter) keep their buckets from the old file on a
//!   rebuild: a shorter-lived source never erases a longer-lived tier.
//! - Resumable: every file is written whole under `.tmp` and renamed, and it
//!   carries the record of its sources, so after a crash a run redoes only
//!   windows whose file did not make it, and never counts a bucket twice.
//! - One run at a time (a mutex around [`Rollups::run`]); queries read
//!   concurrently through `Arc`s of the files.
//! - Retention drops whole files ([`Rollups::apply_retention`]).

mod api;
mod compute;
mod file;
mod tier;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use compute::{RollupPoint, cross_increase, merge_points, rollup_samples};

/// Rollup points per series, as [`crate::Db::read_rollup`] returns them.
pub type SeriesPoints = Vec<(SeriesId, Vec<RollupPoint>)>;

use crate::encoding::{Effort, MAX_CHUNK_SAMPLES, decode_chunk};
use crate::error::Error;
use crate::partition::Partitions;
use crate::partition::blocks::{BlockEntry, BlockFile};
use crate::types::{Sample, SeriesId, Timestamp};
use file::{RollupFile, RollupWriter, Scratch, SourceGen};
use tier::Tier;

/// One configured tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierSpec {
    /// Directory name and the name queries use (`tier=1m`): lowercase
    /// letters, digits and `_`; not `raw`.
    pub name: String,
    /// Bucket width. A multiple of the previous tier's resolution.
    pub resolution: Duration,
    /// Files whose window ended longer ago than this are deleted; `None`
    /// keeps them.
    pub retention: Option<Duration>,
    /// Width of one file's window; `None` picks 1,440 buckets, at most
    /// 30 days, rounded up to a multiple of the source tier's window.
    pub partition: Option<Duration>,
    /// The tier's files may use at most this many bytes: the oldest go
    /// first (never the newest). `None`: no cap.
    pub max_bytes: Option<u64>,
}

impl TierSpec {
    /// The defaults: `1m` kept 90 days and `1h` kept 5 years.
    pub fn defaults() -> Vec<TierSpec> {
        vec![
            TierSpec {
                name: "1m".into(),
                resolution: Duration::from_secs(60),
                retention: Some(Duration::from_secs(90 * 86_400)),
                partition: None,
                max_bytes: None,
            },
            TierSpec {
                name: "1h".into(),
                resolution: Duration::from_secs(3600),
                retention: Some(Duration::from_secs(5 * 365 * 86_400)),
                partition: None,
                max_bytes: None,
            },
        ]
    }
}

/// A tier as the query planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct TierInfo {
    pub name: String,
    pub resolution_ms: i64,
    pub partition_ms: i64,
    pub retention_ms: Option<i64>,
    /// Sorted disjoint `[start, end)` intervals the tier holds rollups for.
    pub coverage: Vec<(Timestamp, Timestamp)>,
}

/// What one [`Rollups::run`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollupReport {
    /// Target windows (re)built, over all tiers.
    pub windows_built: usize,
    /// Raw samples read to build the first tier.
    pub raw_samples: u64,
    /// Finer rollup points read to build the other tiers.
    pub points_in: u64,
    pub elapsed: Duration,
}

/// Per-tier figures of `tidemark inspect`, from reading every file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierInspect {
    pub name: String,
    pub resolution_ms: i64,
    pub partitions: u64,
    /// Distinct series with points.
    pub series: u64,
    pub points: u64,
    /// Raw samples the points summarise (sum of `count`).
    pub covered_samples: u64,
    pub bytes: u64,
    /// First and last window start (0 when empty).
    pub first_start: Timestamp,
    pub last_start: Timestamp,
    /// Series blobs that failed their checksums.
    pub corrupt: u64,
}

fn invalid(msg: String) -> Error {
    Error::InvalidOptions(msg)
}

/// All tiers of a database.
pub(crate) struct Rollups {
    tiers: Vec<Tier>,
    running: Mutex<()>,
    /// Rollup points returned by reads since open.
    points_read: AtomicU64,
}

impl Rollups {
    /// Opens (creating) every tier's directory under `dir`; `raw_width` is
    /// the raw partition width. Fails with a message naming the tier when
    /// the specs do not nest.
    pub(crate) fn open(dir: &Path, specs: &[TierSpec], raw_width: i64) -> Result<Self, Error> {
        let mut tiers: Vec<Tier> = Vec::with_capacity(specs.len());
        let mut names = HashSet::new();
        let (mut src_res, mut src_width) = (1i64, raw_width);
        for spec in specs {
            let name = &spec.name;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid || name == "raw" {
                return Err(invalid(format!(
                    "tier name {name:?}: use lowercase letters, digits and _, not \"raw\""
                )));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(format!("tier {name} is configured twice")));
            }
            let res = spec.resolution.as_millis() as i64;
            if res <= src_res || res % src_res != 0 {
                return Err(invalid(format!(
                    "tier {name}: resolution {res} ms must be a multiple of, and coarser than, the previous tier's {src_res} ms"
                )));
            }
            if src_width % res != 0 {
                return Err(invalid(format!(
                    "tier {name}: resolution {res} ms must divide the source partition width {src_width} ms"
                )));
            }
            let width = match spec.partition {
                Some(p) => p.as_millis() as i64,
                None => {
                    let want = res.saturating_mul(1440).min(30 * 86_400_000).max(src_width);
                    (want + src_width - 1) / src_width * src_width
                }
            };
            if width <= 0 || width % src_width != 0 {
                return Err(invalid(format!(
                    "tier {name}: partition width {width} ms must be a multiple of the source partition width {src_width} ms"
                )));
            }
            if width / res > i64::from(MAX_CHUNK_SAMPLES) {
                return Err(invalid(format!(
                    "tier {name}: a partition of {width} ms holds more than {MAX_CHUNK_SAMPLES} buckets"
                )));
            }
            let retention = spec.retention.map(|r| r.as_millis() as i64);
            let mut tier = Tier::open(
                dir.join(name),
                name.clone(),
                res,
                width,
                src_width,
                retention,
            )?;
            tier.max_bytes = spec.max_bytes;
            tiers.push(tier);
            (src_res, src_width) = (res, width);
        }
        Ok(Rollups {
            tiers,
            running: Mutex::new(()),
            points_read: AtomicU64::new(0),
        })
    }

    pub(crate) fn info(&self) -> Vec<TierInfo> {
        self.tiers
            .iter()
            .map(|t| TierInfo {
                name: t.name.clone(),
                resolution_ms: t.resolution,
                partition_ms: t.width,
                retention_ms: t.retention,
                coverage: t.coverage(),
            })
            .collect()
    }

    fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    pub(crate) fn points_read(&self) -> u64 {
        self.points_read.load(Ordering::Relaxed)
    }

    /// Points of each series in tier `name` with bucket start in
    /// `[start, end]`; `None` when there is no such tier.
    pub(crate) fn read(
        &self,
        name: &str,
        ids: &[SeriesId],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Option<SeriesPoints>, Error> {
        let Some(t) = self.tier(name) else {
            return Ok(None);
        };
        let mut scratch = Scratch::default();
        let mut out = Vec::with_capacity(ids.len());
        let mut n = 0u64;
        for &id in ids {
            let mut pts = Vec::new();
            t.read(id, start, end, &mut scratch, &mut pts)?;
            n += pts.len() as u64;
            out.push((id, pts));
        }
        self.points_read.fetch_add(n, Ordering::Relaxed);
        Ok(Some(out))
    }

    /// Deletes files past each tier's retention (`now_ms` injected).
    pub(crate) fn apply_retention(&self, now_ms: Timestamp) -> Result<usize, Error> {
        let mut dropped = 0;
        for t in &self.tiers {
            if let Some(r) = t.retention {
                dropped += t.drop_before(now_ms.saturating_sub(r))?;
            }
            if let Some(cap) = t.max_bytes {
                dropped += t.drop_oldest_over(cap)?;
            }
        }
        Ok(dropped)
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.tiers.iter().map(Tier::disk_bytes).sum()
    }

    /// Builds every pending window of every tier from raw windows sealed
    /// and ending at or before `closed_before`. Windows past their tier's
    /// retention are built too (old imported data reaches the coarser
    /// tiers through them) and dropped by the retention pass after; only a
    /// source that outlives its tier (raw kept longer than `1m`) would
    /// rebuild such a window on every run.
    pub(crate) fn run(
        &self,
        raw: &Partitions,
        closed_before: Timestamp,
    ) -> Result<RollupReport, Error> {
        let _one = self.running.lock().expect("rollup lock poisoned");
        let started = Instant::now();
        let mut report = RollupReport::default();
        for (i, tier) in self.tiers.iter().enumerate() {
            let sources: Vec<Src> = if i == 0 {
                raw.sealed(closed_before)
                    .into_iter()
                    .map(|(start, generation, b)| Src::Raw(start, generation, b))
                    .collect()
            } else {
                self.tiers[i - 1]
                    .snapshot()
                    .into_iter()
                    .map(Src::Tier)
                    .collect()
            };
            let mut by_target: BTreeMap<Timestamp, Vec<Src>> = BTreeMap::new();
            for s in sources {
                by_target
                    .entry(tier.window_start(s.source().0))
                    .or_default()
                    .push(s);
            }
            for (target, srcs) in by_target {
                let existing = tier.get(target);
                let recorded: HashSet<SourceGen> = existing
                    .as_ref()
                    .map(|f| f.sources.iter().copied().collect())
                    .unwrap_or_default();
                if srcs.iter().all(|s| recorded.contains(&s.source())) {
                    continue;
                }
                let _span =
                    tracing::debug_span!("rollup", tier = %tier.name, start = target).entered();
                build(tier, target, srcs, existing, &mut report)?;
                report.windows_built += 1;
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Reads every file of every tier.
    pub(crate) fn inspect(&self) -> Result<Vec<TierInspect>, Error> {
        let mut out = Vec::with_capacity(self.tiers.len());
        for t in &self.tiers {
            let files = t.snapshot();
            let mut info = TierInspect {
                name: t.name.clone(),
                resolution_ms: t.resolution,
                partitions: files.len() as u64,
                first_start: files.first().map_or(0, |f| f.start),
                last_start: files.last().map_or(0, |f| f.start),
                ..Default::default()
            };
            let mut series = BTreeSet::new();
            let mut scratch = Scratch::default();
            let mut pts = Vec::new();
            for f in &files {
                info.bytes += f.file_bytes();
                for e in f.entries()? {
                    pts.clear();
                    if f.read_entry(&e, Timestamp::MIN, Timestamp::MAX, &mut scratch, &mut pts)
                        .is_err()
                    {
                        info.corrupt += 1;
                        continue;
                    }
                    series.insert(e.series);
                    info.points += pts.len() as u64;
                    info.covered_samples += pts.iter().map(|p| p.count).sum::<u64>();
                }
            }
            info.series = series.len() as u64;
            out.push(info);
        }
        Ok(out)
    }
}

/// A source window of a build.
enum Src {
    Raw(Timestamp, u64, Arc<BlockFile>),
    Tier(Arc<RollupFile>),
}

impl Src {
    fn source(&self) -> SourceGen {
        match self {
            Src::Raw(s, g, _) => (*s, *g),
            Src::Tier(f) => (f.start, f.generation),
        }
    }
}

/// What one build reads, with a cursor over its series-sorted entries.
struct Cursor {
    kind: CursorKind,
    entries: Vec<BlockEntry>,
    pos: usize,
}

enum CursorKind {
    Raw(Arc<BlockFile>),
    Tier(Arc<RollupFile>),
    /// The old target file, for these `[start, end)` ranges only.
    Carry(Arc<RollupFile>, Vec<(Timestamp, Timestamp)>),
}

/// Builds one target window from `srcs` (plus carried buckets of
/// `existing`) into a new generation and installs it.
fn build(
    tier: &Tier,
    target: Timestamp,
    srcs: Vec<Src>,
    existing: Option<Arc<RollupFile>>,
    report: &mut RollupReport,
) -> Result<(), Error> {
    let present: HashSet<Timestamp> = srcs.iter().map(|s| s.source().0).collect();
    let mut record: Vec<SourceGen> = srcs.iter().map(Src::source).collect();
    let mut cursors = Vec::with_capacity(srcs.len() + 1);
    if let Some(old) = &existing {
        let carried: Vec<SourceGen> = old
            .sources
            .iter()
            .filter(|(s, _)| !present.contains(s))
            .copied()
            .collect();
        if !carried.is_empty() {
            record.extend(&carried);
            let ranges = carried
                .iter()
                .map(|&(s, _)| (s, s.saturating_add(old.source_width)))
                .collect();
            cursors.push(Cursor {
                entries: old.entries()?,
                kind: CursorKind::Carry(old.clone(), ranges),
                pos: 0,
            });
        }
    }
    for s in srcs {
        let (kind, entries) = match s {
            Src::Raw(_, _, b) => {
                let e = b.entries()?;
                (CursorKind::Raw(b), e)
            }
            Src::Tier(f) => {
                let e = f.entries()?;
                (CursorKind::Tier(f), e)
            }
        };
        cursors.push(Cursor {
            kind,
            entries,
            pos: 0,
        });
    }
    record.sort_unstable();
    let generation = existing.as_ref().map_or(1, |f| f.generation + 1);
    let path = tier.dir.join(format!("{target}-{generation}.tmr"));
    let mut w = RollupWriter::create(&path, Effort::Fast)?;
    let mut scratch = Scratch::default();
    let (mut samples, mut finer, mut out) = (Vec::<Sample>::new(), Vec::new(), Vec::new());
    let mut buf = Vec::new();
    while let Some(series) = cursors
        .iter()
        .filter_map(|c| c.entries.get(c.pos).map(|e| e.series))
        .min()
    {
        out.clear();
        for c in &mut cursors {
            samples.clear();
            finer.clear();
            while let Some(e) = c.entries.get(c.pos).filter(|e| e.series == series) {
                c.pos += 1;
                match &c.kind {
                    CursorKind::Raw(b) => {
                        b.read_chunk(e, &mut buf)?;
                        let from = samples.len();
                        if let Err(err) = decode_chunk(&buf, &mut samples) {
                            samples.truncate(from);
                            tracing::warn!(path = %b.path().display(), series = series.0, min_ts = e.min_ts, error = %err, "skipping corrupt chunk in rollup");
                        }
                    }
                    CursorKind::Tier(f) => {
                        if let Err(err) = f.read_entry(
                            e,
                            Timestamp::MIN,
                            Timestamp::MAX,
                            &mut scratch,
                            &mut finer,
                        ) {
                            tracing::warn!(error = %err, "skipping corrupt rollup blob");
                        }
                    }
                    CursorKind::Carry(f, ranges) => {
                        let from = out.len();
                        if let Err(err) =
                            f.read_entry(e, Timestamp::MIN, Timestamp::MAX, &mut scratch, &mut out)
                        {
                            tracing::warn!(error = %err, "skipping corrupt rollup blob");
                        }
                        let mut k = from;
                        for i in from..out.len() {
                            let ts = out[i].start;
                            if ranges.iter().any(|&(s, e)| ts >= s && ts < e) {
                                out[k] = out[i];
                                k += 1;
                            }
                        }
                        out.truncate(k);
                    }
                }
            }
            report.raw_samples += samples.len() as u64;
            report.points_in += finer.len() as u64;
            rollup_samples(&samples, tier.resolution, &mut out);
            merge_points(&finer, tier.resolution, &mut out);
        }
        // Sources never share a bucket; order them by time.
        out.sort_unstable_by_key(|p| p.start);
        w.add(series, &out)?;
    }
    w.finish(tier.resolution, tier.source_width, &record)?;
    tier.install(RollupFile::open(&path, target, generation)?)
}
