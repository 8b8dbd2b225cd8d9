//! What the store holds, for people: cardinality (series per metric,
//! values per label name, series per label pair) in Prometheus's
//! `/api/v1/status/tsdb` shape, plus Tidemark's per-tier sizes, WAL size,
//! corrupt chunks and event-log figures. Served by the HTTP API and used
//! by `tidemark inspect` for its "top metrics" table.
//!
//! Invariant: every figure is read from the engine at call time (index,
//! partition and tier scans): nothing is estimated or cached, so this is a
//! status page, not something to poll per second. Lists are sorted by
//! value, largest first (ties by name), and cut to `limit`.

use serde::Serialize;
use tidemark_storage::{Db, Matcher};

/// `name` → `value`, Prometheus's list entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

/// Head figures in Prometheus's shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    /// Series in the index.
    pub num_series: u64,
    /// Distinct `name=value` pairs.
    pub num_label_pairs: u64,
    /// Open head chunks (one per series with samples in the head).
    pub chunk_count: u64,
    /// Start of the oldest data on disk (raw or rollup), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_time: Option<i64>,
}

/// One storage tier's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierStatus {
    pub name: String,
    pub resolution_ms: i64,
    pub partitions: u64,
    /// Distinct series with points (rollup tiers; raw partitions are
    /// not scanned for distinct series, so `None` there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<u64>,
    /// Raw samples stored (raw) or rollup points (rollup tiers).
    pub samples: u64,
    /// Raw samples the tier's points summarise (raw: equal to `samples`).
    pub covered_samples: u64,
    pub bytes: u64,
    /// Bytes per covered raw sample.
    pub bytes_per_sample: f64,
    pub corrupt_chunks: u64,
}

/// The event log's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventsStatus {
    pub segments: u64,
    pub events: u64,
    pub bytes: u64,
    pub corrupt: u64,
}

/// The whole report (`data` of `GET /api/v1/status/tsdb`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStatus {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
    pub tiers: Vec<TierStatus>,
    pub wal: WalStatus,
    pub index_bytes: u64,
    pub corrupt_chunks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalStatus {
    pub bytes: u64,
}

/// Sorts largest first (ties by name) and keeps `limit`.
fn top(mut v: Vec<Stat>, limit: usize) -> Vec<Stat> {
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(limit);
    v
}

/// Series per metric name, largest first, at most `limit`.
pub fn series_count_by_metric(db: &Db, limit: usize) -> Vec<Stat> {
    let all = db
        .label_values("__name__")
        .into_iter()
        .map(|name| {
            let value = db.select(&[Matcher::equal("__name__", &name)]).len() as u64;
            Stat { name, value }
        })
        .collect();
    top(all, limit)
}

/// Computes the report. `events` is the event log's figures when the
/// caller has one open.
///
/// # Errors
/// A partition or tier file cannot be read.
pub fn tsdb_status(
    db: &Db,
    limit: usize,
    events: Option<tidemark_storage::events::EventStats>,
) -> Result<TsdbStatus, tidemark_storage::Error> {
    let stats = db.stats();
    let mut values_per_name = Vec::new();
    let mut bytes_per_name = Vec::new();
    let mut pairs = Vec::new();
    let mut num_pairs = 0u64;
    for name in db.label_names() {
        let values = db.label_values(&name);
        num_pairs += values.len() as u64;
        values_per_name.push(Stat {
            name: name.clone(),
            value: values.len() as u64,
        });
        bytes_per_name.push(Stat {
            name: name.clone(),
            value: values.iter().map(|v| v.len() as u64).sum(),
        });
        for v in values {
            let n = db.select(&[Matcher::equal(&name, &v)]).len() as u64;
            pairs.push(Stat {
                name: format!("{name}={v}"),
                value: n,
            });
        }
    }
    let parts = db.inspect()?;
    let raw_samples: u64 = parts.iter().map(|p| p.samples).sum();
    let raw_bytes: u64 = parts.iter().map(|p| p.file_bytes()).sum();
    let mut tiers = vec![TierStatus {
        name: "raw".into(),
        resolution_ms: 0,
        partitions: parts.len() as u64,
        series: None,
        samples: raw_samples,
        covered_samples: raw_samples,
        bytes: raw_bytes,
        bytes_per_sample: ratio(raw_bytes, raw_samples),
        corrupt_chunks: parts.iter().map(|p| p.corrupt_chunks).sum(),
    }];
    let mut min_time = db.raw_start();
    for t in db.inspect_tiers()? {
        if t.partitions > 0 {
            min_time = Some(min_time.map_or(t.first_start, |m| m.min(t.first_start)));
        }
        tiers.push(TierStatus {
            bytes_per_sample: ratio(t.bytes, t.covered_samples),
            name: t.name,
            resolution_ms: t.resolution_ms,
            partitions: t.partitions,
            series: Some(t.series),
            samples: t.points,
            covered_samples: t.covered_samples,
            bytes: t.bytes,
            corrupt_chunks: t.corrupt,
        });
    }
    Ok(TsdbStatus {
        head_stats: HeadStats {
            num_series: stats.series as u64,
            num_label_pairs: num_pairs,
            chunk_count: stats.head_series as u64,
            min_time,
        },
        series_count_by_metric_name: series_count_by_metric(db, limit),
        label_value_count_by_label_name: top(values_per_name, limit),
        memory_in_bytes_by_label_name: top(bytes_per_name, limit),
        series_count_by_label_value_pair: top(pairs, limit),
        tiers,
        wal: WalStatus {
            bytes: stats.wal_bytes,
        },
        index_bytes: stats.index_bytes,
        corrupt_chunks: stats.corrupt_chunks,
        events: events.map(|e| EventsStatus {
            segments: e.segments,
            events: e.events,
            bytes: e.bytes,
            corrupt: e.corrupt,
        }),
    })
}

fn ratio(bytes: u64, samples: u64) -> f64 {
    if samples == 0 {
        0.0
    } else {
        bytes as f64 / samples as f64
    }
}
