//! Component health probes run every collect interval: what `ingest`,
//! `wal`, `storage`, `rules` and `monitor` report to the health registry
//! (`crate::health`), decided from figures gathered by the caller.
//!
//! | component | degraded when | failed when |
//! | --- | --- | --- |
//! | `ingest` | requests were answered 429/503 (storage overloaded) since the last probe, or every in-flight batch slot is taken | |
//! | `wal` | the data directory's filesystem is over 95 % full | the monitor's own append failed with a storage error (the WAL could not be written) |
//! | `storage` | reads skipped corrupt chunks since the database was opened | the database is closed or a writer thread stopped |
//! | `rules` | a rule's last evaluation failed (the first one is named) | |
//! | `monitor` | events were not derived (component limit) since the last probe | collecting or writing the derived series failed |
//!
//! Invariant: [`assess`] is a pure function of [`ProbeInput`], so every
//! verdict is tested without a running server; `MonitorTask` gathers the
//! input and reports the verdicts.

use crate::health::Status;

/// Used share of the data directory's filesystem above which `wal` is
/// degraded: at 95 % a burst of WAL segments or a compaction can fill it.
pub const DISK_DEGRADED_RATIO: f64 = 0.95;

/// The components [`assess`] reports, in its order.
pub const COMPONENTS: [&str; 5] = ["ingest", "wal", "storage", "rules", "monitor"];

/// Everything the probes look at.
#[derive(Clone, Debug, Default)]
pub struct ProbeInput {
    /// Ingest requests answered 429 or 503 since the previous probe.
    pub overloaded_requests: u64,
    pub batches_in_flight: i64,
    pub batches_in_flight_limit: i64,
    /// `DbStats::corrupt_chunks`.
    pub corrupt_chunks: u64,
    /// `tidemark_disk_used_ratio`, if readable.
    pub disk_used_ratio: Option<f64>,
    /// The error of the monitor's own write of this round, if any.
    pub write_error: Option<WriteFailure>,
    /// Failing rules: `(file/group/rule, error)`.
    pub failing_rules: Vec<(String, String)>,
    /// Events not derived (component limit) since the previous probe.
    pub dropped_events: u64,
}

/// How the monitor's own write failed.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteFailure {
    /// Backpressure: the queues stayed full.
    Overloaded(String),
    /// The database is closed or a writer stopped.
    Closed(String),
    /// Disk I/O or WAL failure.
    Storage(String),
}

/// The verdict for every probed component: (name, status, reason).
pub fn assess(i: &ProbeInput) -> Vec<(&'static str, Status, Option<String>)> {
    let mut out = Vec::with_capacity(5);
    let ingest = if i.overloaded_requests > 0 {
        (
            Status::Degraded,
            Some(format!(
                "storage overloaded: {} ingest requests answered 429/503 since the last check",
                i.overloaded_requests
            )),
        )
    } else if i.batches_in_flight_limit > 0 && i.batches_in_flight >= i.batches_in_flight_limit {
        (
            Status::Degraded,
            Some(format!(
                "all {} in-flight batch slots are taken (backpressure)",
                i.batches_in_flight_limit
            )),
        )
    } else if let Some(WriteFailure::Overloaded(e)) = &i.write_error {
        (Status::Degraded, Some(format!("storage overloaded: {e}")))
    } else {
        (Status::Healthy, None)
    };
    out.push(("ingest", ingest.0, ingest.1));

    let wal = match (&i.write_error, i.disk_used_ratio) {
        (Some(WriteFailure::Storage(e)), _) => (Status::Failed, Some(format!("write failed: {e}"))),
        (_, Some(r)) if r > DISK_DEGRADED_RATIO => (
            Status::Degraded,
            Some(format!("data directory filesystem {:.1} % full", r * 100.0)),
        ),
        _ => (Status::Healthy, None),
    };
    out.push(("wal", wal.0, wal.1));

    let storage = match (&i.write_error, i.corrupt_chunks) {
        (Some(WriteFailure::Closed(e)), _) => (Status::Failed, Some(e.clone())),
        (_, 0) => (Status::Healthy, None),
        (_, n) => (
            Status::Degraded,
            Some(format!(
                "{n} corrupt chunks skipped by reads since the database was opened"
            )),
        ),
    };
    out.push(("storage", storage.0, storage.1));

    let rules = match i.failing_rules.first() {
        None => (Status::Healthy, None),
        Some((rule, err)) => {
            let more = i.failing_rules.len() - 1;
            let tail = if more > 0 {
                format!(" (and {more} more failing rules)")
            } else {
                String::new()
            };
            (
                Status::Degraded,
                Some(format!("rule {rule} failed: {err}{tail}")),
            )
        }
    };
    out.push(("rules", rules.0, rules.1));

    let monitor = match (&i.write_error, i.dropped_events) {
        (Some(e), _) => (
            Status::Failed,
            Some(format!(
                "writing derived series failed: {}",
                match e {
                    WriteFailure::Overloaded(m)
                    | WriteFailure::Closed(m)
                    | WriteFailure::Storage(m) => m,
                }
            )),
        ),
        (None, 0) => (Status::Healthy, None),
        (None, n) => (
            Status::Degraded,
            Some(format!(
                "{n} recovery events not derived: monitor.max_components reached"
            )),
        ),
    };
    out.push(("monitor", monitor.0, monitor.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(i: &ProbeInput, name: &str) -> (Status, Option<String>) {
        let v = assess(i);
        let (_, s, r) = v.into_iter().find(|(n, _, _)| *n == name).unwrap();
        (s, r)
    }

    #[test]
    fn all_healthy_by_default() {
        let v = assess(&ProbeInput::default());
        let names: Vec<_> = v.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, COMPONENTS);
        assert!(
            v.iter()
                .all(|(_, s, r)| *s == Status::Healthy && r.is_none())
        );
    }

    #[test]
    fn each_condition_names_its_cause() {
        let i = ProbeInput {
            overloaded_requests: 3,
            ..Default::default()
        };
        let (s, r) = status_of(&i, "ingest");
        assert_eq!(s, Status::Degraded);
        assert!(r.unwrap().contains("3 ingest requests answered 429/503"));
        let i = ProbeInput {
            batches_in_flight: 64,
            batches_in_flight_limit: 64,
            ..Default::default()
        };
        assert_eq!(status_of(&i, "ingest").0, Status::Degraded);

        let i = ProbeInput {
            disk_used_ratio: Some(0.97),
            ..Default::default()
        };
        assert_eq!(
            status_of(&i, "wal"),
            (
                Status::Degraded,
                Some("data directory filesystem 97.0 % full".into())
            )
        );
        let i = ProbeInput {
            write_error: Some(WriteFailure::Storage("wal/00000001: No space left".into())),
            ..Default::default()
        };
        assert_eq!(status_of(&i, "wal").0, Status::Failed);
        assert_eq!(status_of(&i, "monitor").0, Status::Failed);
        assert_eq!(status_of(&i, "storage").0, Status::Healthy);

        let i = ProbeInput {
            corrupt_chunks: 2,
            ..Default::default()
        };
        assert_eq!(
            status_of(&i, "storage").1.as_deref(),
            Some("2 corrupt chunks skipped by reads since the database was opened")
        );

        let i = ProbeInput {
            failing_rules: vec![
                ("r.yml/g/Bad".into(), "query timed out".into()),
                ("r.yml/g/Worse".into(), "x".into()),
            ],
            ..Default::default()
        };
        assert_eq!(
            status_of(&i, "rules"),
            (
                Status::Degraded,
                Some("rule r.yml/g/Bad failed: query timed out (and 1 more failing rules)".into())
            )
        );
        let i = ProbeInput {
            dropped_events: 7,
            ..Default::default()
        };
        assert_eq!(status_of(&i, "monitor").0, Status::Degraded);
    }
}
