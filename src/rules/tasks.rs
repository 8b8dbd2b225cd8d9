//! [`Scheduler`]: the tokio tasks that drive a [`RuleManager`]: one per
//! group, ticking at the group's interval, restarted whenever the manager
//! reloads its rule files.
//!
//! Invariants:
//! - Only this module reads the wall clock for rules; a group's first
//!   round runs at once, later rounds at multiples of its interval and are
//!   evaluated at exactly that multiple, so groups with the same interval
//!   share an evaluation time (and their reads, `SharedReads`).
//! - Evaluation runs on tokio's blocking pool, never on an async worker.
//! - A group task holds the group list it was started with; after a reload
//!   the old tasks finish their round and stop before the new ones start.
//! - [`Scheduler::stop`] returns after every round in progress finished,
//!   so no rule touches the database afterwards.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::scheduler::{ManagedGroup, RuleManager};

/// Drives a [`RuleManager`] until stopped.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts the tasks on the current tokio runtime. Each group is
    /// evaluated right away, then every `interval`; after a reload the new
    /// groups are evaluated right away too.
    pub fn start(manager: Arc<RuleManager>) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(manager, stopped));
        Scheduler { stop, task }
    }

    /// Stops every task, waiting for rounds in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "rule scheduler task failed");
        }
    }
}

/// Runs one task per group of the current list; on a reload, stops them
/// and starts tasks for the new list.
async fn supervise(manager: Arc<RuleManager>, mut stopped: watch::Receiver<bool>) {
    let mut reloads = manager.reloads();
    loop {
        reloads.borrow_and_update();
        let groups = manager.groups();
        let (stop_groups, groups_stopped) = watch::channel(false);
        let tasks: Vec<_> = (0..groups.len())
            .filter(|&i| !groups[i].group.rules.is_empty())
            .map(|i| {
                tokio::spawn(run_group(
                    manager.clone(),
                    groups.clone(),
                    i,
                    groups_stopped.clone(),
                ))
            })
            .collect();
        let reloaded = tokio::select! {
            _ = stopped.changed() => false,
            r = reloads.changed() => r.is_ok(),
        };
        let _ = stop_groups.send(true);
        for t in tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "rule group task failed");
            }
        }
        if !reloaded || *stopped.borrow() {
            return;
        }
    }
}

async fn run_group(
    manager: Arc<RuleManager>,
    groups: Arc<Vec<ManagedGroup>>,
    index: usize,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = groups[index].interval;
    let interval_ms = (interval.as_millis() as i64).max(1);
    let now = crate::server::now_ms();
    let to_boundary = interval_ms - now.rem_euclid(interval_ms);
    let first = tokio::time::Instant::now() + Duration::from_millis(to_boundary as u64);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut first_round = true;
    loop {
        if !first_round {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => return,
            }
        }
        if *stopped.borrow() {
            return;
        }
        let (m, g) = (manager.clone(), groups.clone());
        let t = eval_time(crate::server::now_ms(), interval_ms, first_round);
        first_round = false;
        if let Err(e) = tokio::task::spawn_blocking(move || m.eval(&g[index], t)).await {
            tracing::warn!(error = %e, "rule evaluation task failed");
        }
    }
}

/// The evaluation time of a round started at `now_ms`: the first round
/// runs at `now_ms`; a later round was started by a tick at a multiple of
/// the interval and is evaluated at that multiple (when the tick came
/// late by more than a second, at `now_ms`).
fn eval_time(now_ms: i64, interval_ms: i64, first_round: bool) -> i64 {
    let late = now_ms.rem_euclid(interval_ms);
    if first_round || late > 1000 {
        now_ms
    } else {
        now_ms - late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_after_the_first_are_evaluated_at_interval_multiples() {
        assert_eq!(eval_time(60_123, 15_000, true), 60_123);
        assert_eq!(eval_time(60_123, 15_000, false), 60_000);
        assert_eq!(eval_time(60_000, 15_000, false), 60_000);
        assert_eq!(
            eval_time(62_500, 15_000, false),
            62_500,
            "too late to round"
        );
    }
}
