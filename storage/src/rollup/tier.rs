//! One rollup tier's directory: its live files by window start.
//!
//! Invariants:
//! - At most one live file per window: the highest generation. At open,
//!   `.tmp` files (a build that did not finish) and lower generations (a
//!   crash between renaming a new generation in and deleting the old one)
//!   are deleted, so each bucket is held exactly once.
//! - Only the rollup run (one at a time, see `Rollups`) installs or drops
//!   files; readers take an `Arc` of a file and keep reading it even after
//!   it is replaced or unlinked.
//! - A file built at another resolution or from other source windows than
//!   the configuration says refuses the open, naming the tier: changing
//!   the configuration never deletes rollups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::compute::RollupPoint;
use super::file::{RollupFile, Scratch};
use crate::error::Error;
use crate::partition::sync_dir;
use crate::types::{SeriesId, Timestamp};

pub(crate) struct Tier {
    pub(crate) name: String,
    pub(crate) resolution: i64,
    /// Width of one file's window.
    pub(crate) width: i64,
    /// Width of the source tier's windows (raw partitions for the first).
    pub(crate) source_width: i64,
    pub(crate) retention: Option<i64>,
    /// Size cap: the oldest files go first, never the newest.
    pub(crate) max_bytes: Option<u64>,
    pub(crate) dir: PathBuf,
    files: RwLock<BTreeMap<Timestamp, Arc<RollupFile>>>,
}

fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// `"<start>-<gen>.tmr"` → `(start, gen)`.
pub(crate) fn parse_name(name: &str) -> Option<(Timestamp, u64)> {
    let stem = name.strip_suffix(".tmr")?;
    let (start, generation) = stem.rsplit_once('-')?;
    Some((start.parse().ok()?, generation.parse().ok()?))
}

impl Tier {
    pub(crate) fn open(
        dir: PathBuf,
        name: String,
        resolution: i64,
        width: i64,
        source_width: i64,
        retention: Option<i64>,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut newest: BTreeMap<Timestamp, (u64, PathBuf)> = BTreeMap::new();
        let mut stale = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let fname = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if fname.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "removing partial rollup output");
                stale.push(path);
                continue;
            }
            let Some((start, generation)) = parse_name(fname) else {
                continue;
            };
            match newest.get(&start) {
                Some((g, _)) if *g > generation => stale.push(path),
                _ => {
                    if let Some((_, old)) = newest.insert(start, (generation, path)) {
                        stale.push(old);
                    }
                }
            }
        }
        for p in &stale {
            remove(p)?;
        }
        let mut files = BTreeMap::new();
        for (start, (generation, path)) in newest {
            match RollupFile::open(&path, start, generation) {
                Ok(f) if f.resolution == resolution && f.source_width == source_width => {
                    files.insert(start, Arc::new(f));
                }
                Ok(f) => {
                    return Err(Error::InvalidOptions(format!(
                        "tier {name}: {} was built at resolution {} ms from {} ms source windows, \
                         but the tier is configured as {resolution} ms from {source_width} ms; \
                         configure it back or move {} away",
                        path.display(),
                        f.resolution,
                        f.source_width,
                        dir.display()
                    )));
                }
                Err(e) => {
                    let aside = path.with_extension("tmr.corrupt");
                    tracing::error!(error = %e, moved_to = %aside.display(), "rollup file unreadable; moved aside, it is rebuilt if its sources still exist");
                    std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
                }
            }
        }
        if !stale.is_empty() {
            sync_dir(&dir)?;
        }
        Ok(Tier {
            name,
            resolution,
            width,
            source_width,
            retention,
            max_bytes: None,
            dir,
            files: RwLock::new(files),
        })
    }

    pub(crate) fn window_start(&self, ts: Timestamp) -> Timestamp {
        ts.div_euclid(self.width).saturating_mul(self.width)
    }

    pub(crate) fn get(&self, start: Timestamp) -> Option<Arc<RollupFile>> {
        self.files
            .read()
            .expect("tier lock poisoned")
            .get(&start)
            .cloned()
    }

    /// Every live file, by window start.
    pub(crate) fn snapshot(&self) -> Vec<Arc<RollupFile>> {
        self.files
            .read()
            .expect("tier lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Files whose window overlaps `[start, end]`.
    fn overlapping(&self, start: Timestamp, end: Timestamp) -> Vec<Arc<RollupFile>> {
        let files = self.files.read().expect("tier lock poisoned");
        files
            .range(self.window_start(start)..=end)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Replaces the window's file with `new` (already renamed into place)
    /// and deletes the old generation.
    pub(crate) fn install(&self, new: RollupFile) -> Result<(), Error> {
        let old = self
            .files
            .write()
            .expect("tier lock poisoned")
            .insert(new.start, Arc::new(new));
        sync_dir(&self.dir)?;
        if let Some(old) = old {
            remove(old.path())?;
        }
        Ok(())
    }

    /// Drops every file whose window ends at or before `before`; returns
    /// how many.
    pub(crate) fn drop_before(&self, before: Timestamp) -> Result<usize, Error> {
        let expired: Vec<Arc<RollupFile>> = {
            let mut files = self.files.write().expect("tier lock poisoned");
            let keys: Vec<Timestamp> = files
                .keys()
                .take_while(|s| s.saturating_add(self.width) <= before)
                .copied()
                .collect();
            keys.iter().filter_map(|k| files.remove(k)).collect()
        };
        for f in &expired {
            tracing::info!(tier = %self.name, start = f.start, "dropping rollup partition past retention");
            remove(f.path())?;
        }
        if !expired.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(expired.len())
    }

    /// Time this tier holds rollups for: the source windows its files were
    /// built from, merged into sorted disjoint `[start, end)` intervals.
    pub(crate) fn coverage(&self) -> Vec<(Timestamp, Timestamp)> {
        let mut spans: Vec<(Timestamp, Timestamp)> = self
            .snapshot()
            .iter()
            .flat_map(|f| {
                f.sources
                    .iter()
                    .map(|&(s, _)| (s, s.saturating_add(f.source_width)))
                    .collect::<Vec<_>>()
            })
            .collect();
        spans.sort_unstable();
        let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Appends `series`' points with bucket start in `[start, end]`.
    pub(crate) fn read(
        &self,
        series: SeriesId,
        start: Timestamp,
        end: Timestamp,
        scratch: &mut Scratch,
        out: &mut Vec<RollupPoint>,
    ) -> Result<(), Error> {
        for f in self.overlapping(start, end) {
            f.read(series, start, end, scratch, out)?;
        }
        Ok(())
    }

    /// Deletes the oldest files until the tier fits in `cap` bytes,
    /// keeping the newest file. Returns how many were deleted.
    pub(crate) fn drop_oldest_over(&self, cap: u64) -> Result<usize, Error> {
        let expired: Vec<Arc<RollupFile>> = {
            let mut files = self.files.write().expect("tier lock poisoned");
            let mut total: u64 = files.values().map(|f| f.file_bytes()).sum();
            let mut out = Vec::new();
            while total > cap && files.len() > 1 {
                let Some((_, f)) = files.pop_first() else {
                    break;
                };
                total = total.saturating_sub(f.file_bytes());
                out.push(f);
            }
            out
        };
        for f in &expired {
            tracing::info!(tier = %self.name, start = f.start, "dropping rollup partition over the tier's size cap");
            remove(f.path())?;
        }
        if !expired.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(expired.len())
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.snapshot().iter().map(|f| f.file_bytes()).sum()
    }
}
