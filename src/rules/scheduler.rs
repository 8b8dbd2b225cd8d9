//! Running rules inside `tidemark serve`: [`RuleManager`] holds the loaded
//! groups (rule files + the default pack), evaluates one group at a time
//! over the database at a caller-given time, appends the output, keeps
//! each group's status for `/api/v1/rules` and `/api/v1/alerts`, and
//! persists alert state, and reloads its rule files on demand;
//! `tasks::Scheduler` drives it with one tokio task per group ticking at
//! the group's interval.
//!
//! Invariants:
//! - [`RuleManager::eval_group`] takes the evaluation time as an argument;
//!   only the scheduler's tasks read the wall clock, so tests drive rounds
//!   at chosen times.
//! - [`RuleManager::reload`] replaces the group list as a whole (readers
//!   and running rounds keep the snapshot they hold); a reload that fails
//!   validation changes nothing.
//! - A round reads its group's selections in one batch
//!   ([`Prefetched`], labels converted through a [`LabelCache`] kept
//!   across rounds), so every rule of the round sees the same snapshot.
//! - Alert state is written to `<data_dir>/rules/state.json` (see
//!   `persist`) after a round that changed it and read back at start, so a
//!   restart keeps `activeAt` and does not reset `for`. An unreadable
//!   state file is logged and ignored.
//! - Output is appended without waiting for the disk (see `output`): a
//!   round's samples are readable at once, and a failed append is reported
//!   by the group's next round.
//! - A failing rule is logged once per round (one line per rule) and its
//!   error kept for the API; the group's other rules still run.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tidemark_query::EvalOptions;
use tidemark_storage::Db;

use crate::config::{Config, RulesConfig};
use crate::rules::{DEFAULT_RULES_NAME, GroupState, RuleErrors, RuleGroup};
use crate::source::{DbSource, LabelCache, Prefetched, SharedReads};

use super::output::OutputWriter;
use super::persist::{self, SavedGroup};

/// The state file's name under `<data_dir>/rules/`.
pub const STATE_FILE: &str = "state.json";

/// Why the rules could not be loaded, run or persisted.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A rule file (or the default pack) is invalid.
    #[error("{0}")]
    Invalid(#[from] RuleErrors),
    /// The same rule file is configured twice.
    #[error("rule file {0} is listed twice in rules.files")]
    DuplicateFile(String),
    /// Reading or writing the state file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("{}: {source}", path.display())]
    StateFormat {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// Creating the output series failed.
    #[error("creating rule output series: {0}")]
    Storage(#[from] tidemark_storage::Error),
    /// Appending the output samples failed.
    #[error("appending rule output: {0}")]
    Append(#[from] tidemark_storage::AppendError),
    /// The manager was built from groups in memory, not from rule files.
    #[error("these rules were not loaded from rule files and cannot be reloaded")]
    NotReloadable,
}

/// Whether a rule's last evaluation worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleHealth {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed (see [`RuleStatus::last_error`]).
    Err,
}

impl RuleHealth {
    /// Prometheus's name: `unknown`, `ok`, `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// The last evaluation of one rule.
#[derive(Debug, Clone, Default)]
pub struct RuleStatus {
    /// Health after the last round.
    pub health: RuleHealth,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
    /// How long its query and alert update took in the last round (the
    /// group's batched read and append are the group's, not the rule's).
    pub eval_duration: Duration,
}

/// A group's alert state and the outcome of its last round.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    /// Alerts (what is persisted).
    pub state: GroupState,
    /// The outcome of the last round.
    pub round: RoundStatus,
}

/// The outcome of a group's last round.
#[derive(Debug, Clone, Default)]
pub struct RoundStatus {
    /// Time (ms) of the last round.
    pub last_eval_ms: Option<i64>,
    /// How long the last round took: the batched read, every rule's query
    /// and alert update, and the append (each rule's own share is in
    /// [`RuleStatus::eval_duration`]).
    pub eval_duration: Duration,
    /// Rule evaluations that failed since start (a round adds one per
    /// failing rule), exported as `tidemark_rule_evaluation_failures_total`.
    pub failures_total: u64,
    /// One entry per rule, in file order.
    pub rules: Vec<RuleStatus>,
}

/// One loaded group.
#[derive(Debug)]
pub struct ManagedGroup {
    /// The rule file it came from ([`DEFAULT_RULES_NAME`] for the pack).
    pub file: String,
    /// The validated group.
    pub group: RuleGroup,
    /// Its evaluation interval (the group's, or the configured default).
    pub interval: Duration,
    /// The last round's outcome.
    round: Mutex<RoundStatus>,
    /// The alert state; [`RuleGroup::eval_shared`] locks it per rule.
    state: Mutex<GroupState>,
    /// Series the last round wrote and its pending append.
    output: Mutex<OutputWriter>,
}

impl ManagedGroup {
    fn new(file: String, group: RuleGroup, default_interval: Duration, state: GroupState) -> Self {
        ManagedGroup {
            interval: group.interval_or(default_interval),
            round: Mutex::new(RoundStatus {
                rules: vec![RuleStatus::default(); group.rules.len()],
                ..RoundStatus::default()
            }),
            state: Mutex::new(state),
            output: Mutex::new(OutputWriter::default()),
            file,
            group,
        }
    }

    /// A copy of the last round's outcome (without the alert state).
    pub fn round(&self) -> RoundStatus {
        lock(&self.round).clone()
    }

    /// A copy of the group's status.
    pub fn status(&self) -> GroupStatus {
        GroupStatus {
            state: lock(&self.state).clone(),
            round: lock(&self.round).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every loaded group, the database they read and write, and the state file.
pub struct RuleManager {
    db: Arc<Db>,
    /// The loaded groups; [`RuleManager::reload`] swaps the whole list.
    groups: RwLock<Arc<Vec<ManagedGroup>>>,
    /// Where the groups came from, for [`RuleManager::reload`] (`None`
    /// for a manager built from groups in memory).
    source: Option<RulesConfig>,
    /// Bumped by every reload; [`Scheduler`] restarts its tasks on it.
    generation: tokio::sync::watch::Sender<u64>,
    state_path: PathBuf,
    opts: EvalOptions,
    max_series: usize,
    /// Labels of the series rules read, converted once (ids never change).
    labels: LabelCache,
    /// Selections read once for all groups evaluated at the same time.
    shared: SharedReads,
    save_lock: Mutex<()>,
    reload_lock: Mutex<()>,
    /// Rule output is forwarded like ingested samples (`crate::forward`).
    feed: crate::forward::Feed,
    /// Where each round's alerts go (the notifier), once set.
    sink: std::sync::OnceLock<Arc<dyn crate::notify::AlertSink>>,
}

impl RuleManager {
    /// Loads `cfg.rules` (files, then the default pack if enabled) and the
    /// saved state under `cfg.storage.data_dir`.
    ///
    /// # Errors
    /// An invalid or unreadable rule file, or a file listed twice.
    pub fn from_config(db: Arc<Db>, cfg: &Config) -> Result<Self, RulesError> {
        let groups = load_groups(&cfg.rules)?;
        let l = &cfg.limits;
        let opts = EvalOptions {
            max_samples: l.query_max_samples,
            timeout: l.query_timeout,
            max_series: l.query_max_series,
            ..EvalOptions::default()
        };
        let mut m = Self::new(
            db,
            groups,
            cfg.rules.evaluation_interval,
            &cfg.storage.data_dir,
            opts,
        );
        m.source = Some(cfg.rules.clone());
        Ok(m)
    }

    /// Reads the rule files again (and the default pack) and replaces the
    /// groups, as Prometheus does on `POST /-/reload` or SIGHUP. A group
    /// with the same file and name keeps its alerts (so `for` is not
    /// reset), its series for stale markers and its status; a group that
    /// is gone stops being evaluated, its series get stale markers at
    /// `now_ms` and its alerts are handed to the notifier as gone (so they
    /// resolve). Returns the number of groups.
    ///
    /// # Errors
    /// An invalid or unreadable rule file: nothing changes, the loaded
    /// groups keep running.
    pub fn reload(&self, now_ms: i64) -> Result<usize, RulesError> {
        let Some(source) = &self.source else {
            return Err(RulesError::NotReloadable);
        };
        // One reload at a time (an HTTP request and a SIGHUP may race).
        let _reloading = lock(&self.reload_lock);
        let loaded = load_groups(source)?;
        let old = self.groups();
        let groups: Vec<ManagedGroup> = loaded
            .into_iter()
            .map(|(file, group)| {
                let g = ManagedGroup::new(
                    file,
                    group,
                    source.evaluation_interval,
                    GroupState::default(),
                );
                if let Some(prev) = old
                    .iter()
                    .find(|o| o.file == g.file && o.group.name == g.group.name)
                {
                    *lock(&g.state) = lock(&prev.state).clone();
                    *lock(&g.output) = std::mem::take(&mut *lock(&prev.output));
                    let mut round = lock(&prev.round).clone();
                    round
                        .rules
                        .resize(g.group.rules.len(), RuleStatus::default());
                    *lock(&g.round) = round;
                }
                g
            })
            .collect();
        let n = groups.len();
        let gone: Vec<&ManagedGroup> = old
            .iter()
            .filter(|o| {
                !groups
                    .iter()
                    .any(|g| g.file == o.file && g.group.name == o.group.name)
            })
            .collect();
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(groups);
        self.generation.send_modify(|g| *g += 1);
        for g in gone {
            // Its series end now (stale markers, as Prometheus writes for a
            // removed group) and its alerts resolve.
            let t = now_ms - g.group.query_offset.as_millis() as i64;
            let mut output = lock(&g.output);
            let ended = output
                .collect_previous()
                .and_then(|()| output.write(&self.db, &self.feed, &mut Default::default(), t));
            if let Err(e) = ended {
                tracing::warn!(file = %g.file, group = %g.group.name, error = %e, "ending a removed group's series failed");
            }
            if let Some(sink) = self.sink.get() {
                sink.alerts(&format!("{}/{}", g.file, g.group.name), &[], now_ms);
            }
        }
        self.save_state()?;
        tracing::info!(groups = n, "rule files reloaded");
        Ok(n)
    }

    /// Changes whenever [`RuleManager::reload`] replaced the groups.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A manager over `groups` (rule file name, group), restoring alert
    /// state from `<data_dir>/rules/state.json` if it exists.
    pub fn new(
        db: Arc<Db>,
        groups: Vec<(String, RuleGroup)>,
        default_interval: Duration,
        data_dir: &Path,
        opts: EvalOptions,
    ) -> Self {
        let state_path = data_dir.join("rules").join(STATE_FILE);
        let mut saved = match persist::load(&state_path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable rule state; alerts start over");
                BTreeMap::new()
            }
        };
        let groups = groups
            .into_iter()
            .map(|(file, group)| {
                let state = saved
                    .remove(&(file.clone(), group.name.clone()))
                    .unwrap_or_default();
                ManagedGroup::new(file, group, default_interval, state)
            })
            .collect();
        let max_series = opts.max_series;
        Self {
            db,
            groups: RwLock::new(Arc::new(groups)),
            source: None,
            generation: tokio::sync::watch::Sender::new(0),
            state_path,
            opts,
            max_series,
            labels: LabelCache::default(),
            shared: SharedReads::default(),
            save_lock: Mutex::new(()),
            reload_lock: Mutex::new(()),
            feed: crate::forward::Feed::default(),
            sink: std::sync::OnceLock::new(),
        }
    }

    /// The handle rule output is forwarded through.
    pub fn feed(&self) -> &crate::forward::Feed {
        &self.feed
    }

    /// Hands every group's alerts to `sink` after each evaluation (set
    /// once; later calls are ignored).
    pub fn set_alert_sink(&self, sink: Arc<dyn crate::notify::AlertSink>) {
        let _ = self.sink.set(sink);
    }

    /// The loaded groups, in load order (a snapshot: a reload replaces
    /// the list, not the groups in it).
    pub fn groups(&self) -> Arc<Vec<ManagedGroup>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where alert state is persisted.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Evaluates group `index` at `t_ms`, appends its samples, records the
    /// outcome and saves the state when an alert changed. Blocking: call
    /// it on the blocking pool.
    pub fn eval_group(&self, index: usize, t_ms: i64) {
        self.eval(&self.groups()[index], t_ms);
    }

    /// [`RuleManager::eval_group`] for a group of any snapshot (the
    /// scheduler's tasks hold the list they were started with).
    pub fn eval(&self, g: &ManagedGroup, t_ms: i64) {
        let started = Instant::now();
        let before = persist::persisted_shape(&lock(&g.state));
        let src = DbSource::new(&self.db, self.max_series).with_label_cache(&self.labels);
        let reads = g.group.reads(t_ms, &self.opts);
        let src = Prefetched::shared(&src, &reads, self.max_series, t_ms, &self.shared);
        let mut out = g.group.eval_shared(&g.state, &src, t_ms, &self.opts);
        let mut rules: Vec<RuleStatus> = (0..g.group.rules.len())
            .map(|i| RuleStatus {
                health: RuleHealth::Ok,
                last_error: None,
                eval_duration: out.durations.get(i).copied().unwrap_or_default(),
            })
            .collect();
        for e in &out.errors {
            let r = &mut rules[e.index()];
            if r.health == RuleHealth::Err {
                continue;
            }
            tracing::warn!(file = %g.file, group = %g.group.name, error = %e, "rule evaluation failed");
            r.health = RuleHealth::Err;
            r.last_error = Some(e.to_string());
        }
        let written = {
            let mut output = lock(&g.output);
            let t = t_ms - g.group.query_offset.as_millis() as i64;
            output
                .collect_previous()
                .map_err(|e| format!("the previous round's output: {e}"))
                .and_then(|()| {
                    output
                        .write(&self.db, &self.feed, &mut out, t)
                        .map_err(|e| e.to_string())
                })
        };
        if let Err(e) = written {
            tracing::warn!(file = %g.file, group = %g.group.name, error = %e, "writing rule output failed");
            for r in rules.iter_mut().filter(|r| r.health == RuleHealth::Ok) {
                r.health = RuleHealth::Err;
                r.last_error = Some(e.clone());
            }
        }
        // Only what `for` / `keep_firing_for` need after a restart is worth
        // a write: which alerts exist, their states and times. A round that
        // changed none of that (values and annotations are recomputed every
        // round) skips rewriting the state file.
        let changed = persist::persisted_shape(&lock(&g.state)) != before;
        {
            let mut st = lock(&g.round);
            st.last_eval_ms = Some(t_ms);
            st.eval_duration = started.elapsed();
            st.failures_total +=
                rules.iter().filter(|r| r.health == RuleHealth::Err).count() as u64;
            st.rules = rules;
        }
        if let Some(sink) = self.sink.get() {
            let alerts = group_alerts(g);
            sink.alerts(&format!("{}/{}", g.file, g.group.name), &alerts, t_ms);
        }
        if changed && let Err(e) = self.save_state() {
            tracing::warn!(error = %e, "saving rule state failed");
        }
    }

    /// Writes every group's alert state to the state file (temporary file,
    /// fsync, rename).
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub fn save_state(&self) -> Result<(), RulesError> {
        let _guard = lock(&self.save_lock);
        let groups = self
            .groups()
            .iter()
            .map(|g| SavedGroup {
                file: g.file.clone(),
                group: g.group.name.clone(),
                state: lock(&g.state).clone(),
            })
            .collect();
        persist::save(&self.state_path, groups)
    }
}

/// The groups of `cfg.files` (in order) and of the default pack when
/// enabled, each with its file's name.
fn load_groups(cfg: &RulesConfig) -> Result<Vec<(String, RuleGroup)>, RulesError> {
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for path in &cfg.files {
        let name = path.display().to_string();
        if !seen.insert(name.clone()) {
            return Err(RulesError::DuplicateFile(name));
        }
        for g in crate::rules::load_rule_file(path)? {
            groups.push((name.clone(), g));
        }
    }
    if cfg.default_pack {
        for g in crate::rules::thresholds::default_groups_with(&cfg.thresholds)? {
            groups.push((DEFAULT_RULES_NAME.to_string(), g));
        }
    }
    Ok(groups)
}

/// A group's alerts with their rule's expression text.
fn group_alerts(g: &ManagedGroup) -> Vec<(crate::rules::Alert, String)> {
    let state = lock(&g.state);
    let mut out = Vec::new();
    for (i, r) in g.group.rules.iter().enumerate() {
        if let crate::rules::Rule::Alerting(a) = r
            && let Some(ra) = state.rule_alerts(i, &a.alert)
        {
            out.extend(
                ra.alerts
                    .values()
                    .map(|al| (al.clone(), a.expr_text.clone())),
            );
        }
    }
    out
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
