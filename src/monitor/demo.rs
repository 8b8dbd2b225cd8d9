//! The `tidemark serve --demo` workload: four simulated services
//! (`checkout`, `payments`, `inventory`, `search`) making calls with
//! retries, fallbacks and circuit breakers, through scripted outages and
//! error bursts, reported through the typed monitor API (so the event log,
//! the derived series and the default alerts all have something to show).
//!
//! The script, per 20-minute cycle of simulated time (start times jittered
//! by the seed, except the first outage):
//! - `payments` is down from ~15 s for a minute: its retries fail, five
//!   failed recoveries in a row open its breaker (ConsecutiveFailures and
//!   CircuitBreakerOpen fire within the first minute), half-open probes
//!   fail until the outage ends, then one succeeds and it closes.
//! - `inventory` has a 7-minute burst (65 % of attempts fail, so ~42 % of
//!   recoveries, which retry twice): RecoveryErrorRateCritical fires after
//!   its 2 minutes, RecoveryErrorRateHigh after its 5.
//! - `search` has an 8-minute burst of 2-second timeouts (45 % of
//!   attempts, ~20 % of recoveries, failed ones taking over 6 s): the
//!   error-rate alerts fire, and RecoverySlow (p99 > 5 s for 10 minutes)
//!   towards its end.
//! - `checkout` has short seeded 30-second bursts.
//!
//! It also writes `demo_requests_total{service, outcome}` (`ok`,
//! `recovered`, `fallback`, `error`) every tick so charts have throughput.
//!
//! Invariants:
//! - [`Sim`] is deterministic: the same seed and the same sequence of
//!   `advance` steps give the same events (SplitMix64, no wall clock).
//! - Simulated time runs `speed` times faster than wall time; events are
//!   stamped with the wall time their simulated time maps to, so they are
//!   spread over the tick, never in the future.

use std::sync::Arc;
use std::time::Duration;

use tidemark_storage::{Db, Labels};

use super::events::{BreakerState, RecoveryEvent};
use super::{Monitor, write};

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Seed of the simulation.
    pub seed: u64,
    /// Simulated seconds per wall second.
    pub speed: f64,
    /// Wall time between two steps.
    pub tick: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            speed: 1.0,
            tick: Duration::from_secs(1),
        }
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Request outcomes of `demo_requests_total`.
pub const OUTCOMES: [&str; 4] = ["ok", "recovered", "fallback", "error"];

/// Length of one scripted cycle, ms.
const CYCLE_MS: i64 = 20 * 60_000;
/// Failed recoveries in a row that open a breaker.
const TRIP_AFTER: u32 = 5;
/// How long an open breaker waits before a half-open probe, ms.
const COOLDOWN_MS: i64 = 10_000;
/// Attempts per call (the first plus retries).
const MAX_ATTEMPTS: u32 = 3;

/// A period of elevated failure probability within a cycle.
#[derive(Clone, Debug)]
struct Burst {
    start_ms: i64,
    end_ms: i64,
    fail: f64,
    kind: &'static str,
    /// Latency of a failing attempt, ms.
    latency_ms: u64,
}

#[derive(Clone, Debug)]
struct Service {
    name: &'static str,
    /// Calls per simulated second.
    rate: f64,
    base_fail: f64,
    fallback: bool,
    bursts: Vec<Burst>,
    /// Fractional calls carried to the next step.
    carry: f64,
    breaker: BreakerState,
    opened_at: i64,
    consecutive: u32,
    requests: [u64; OUTCOMES.len()],
}

/// The simulation (no I/O, no clock).
#[derive(Clone, Debug)]
pub struct Sim {
    rng: Rng,
    now_ms: i64,
    services: Vec<Service>,
}

impl Sim {
    /// A new simulation at simulated time 0.
    pub fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let mut jitter = |ms: i64| ms + rng.below(40_000) as i64 - 20_000;
        let burst = |start_ms, len_ms, fail, kind, latency_ms| Burst {
            start_ms,
            end_ms: start_ms + len_ms,
            fail,
            kind,
            latency_ms,
        };
        let payments = vec![burst(15_000, 60_000, 0.97, "connection_refused", 5)];
        let inventory = vec![burst(jitter(240_000), 420_000, 0.65, "http_503", 40)];
        let search = vec![burst(jitter(660_000), 480_000, 0.45, "timeout", 2000)];
        let checkout = (0..3)
            .map(|i| burst(jitter(150_000 + i * 360_000), 30_000, 0.35, "http_500", 20))
            .collect();
        let svc = |name, rate, base_fail, fallback, bursts| Service {
            name,
            rate,
            base_fail,
            fallback,
            bursts,
            carry: 0.0,
            breaker: BreakerState::Closed,
            opened_at: 0,
            consecutive: 0,
            requests: [0; OUTCOMES.len()],
        };
        Sim {
            services: vec![
                svc("checkout", 4.0, 0.02, false, checkout),
                svc("payments", 3.0, 0.01, true, payments),
                svc("inventory", 4.0, 0.03, true, inventory),
                svc("search", 5.0, 0.02, true, search),
            ],
            rng,
            now_ms: 0,
        }
    }

    /// Simulated time, ms since the start.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// `demo_requests_total` per service: (service, counts in [`OUTCOMES`] order).
    pub fn requests(&self) -> Vec<(&'static str, [u64; OUTCOMES.len()])> {
        self.services.iter().map(|s| (s.name, s.requests)).collect()
    }

    /// Runs `dt_ms` of simulated time, appending `(simulated ms, event)`.
    pub fn advance(&mut self, dt_ms: i64, out: &mut Vec<(i64, RecoveryEvent)>) {
        let start = self.now_ms;
        self.now_ms += dt_ms.max(0);
        for i in 0..self.services.len() {
            let s = &mut self.services[i];
            s.carry += s.rate * dt_ms as f64 / 1000.0;
            let calls = s.carry.floor() as i64;
            s.carry -= calls as f64;
            for c in 0..calls {
                let t = start + (c * dt_ms) / calls.max(1);
                call(&mut self.rng, &mut self.services[i], t, out);
            }
        }
    }
}

fn fail_probability(s: &Service, t: i64) -> (f64, &'static str, u64) {
    let in_cycle = t.rem_euclid(CYCLE_MS);
    s.bursts
        .iter()
        .find(|b| (b.start_ms..b.end_ms).contains(&in_cycle))
        .map_or((s.base_fail, "timeout", 250), |b| {
            (b.fail, b.kind, b.latency_ms)
        })
}

/// One call of service `s` at simulated time `t`.
fn call(rng: &mut Rng, s: &mut Service, t: i64, out: &mut Vec<(i64, RecoveryEvent)>) {
    let component = || s.name.to_string();
    let mut emit = |t, ev| out.push((t, ev));
    if s.breaker == BreakerState::Open {
        if t - s.opened_at < COOLDOWN_MS {
            // Short-circuited: the fallback answers, or the call fails fast.
            let outcome = if s.fallback {
                emit(
                    t,
                    RecoveryEvent::FallbackUsed {
                        component: component(),
                    },
                );
                2
            } else {
                3
            };
            s.requests[outcome] += 1;
            return;
        }
        s.breaker = BreakerState::HalfOpen;
        emit(
            t,
            RecoveryEvent::CircuitBreaker {
                component: component(),
                state: BreakerState::HalfOpen,
            },
        );
    }
    let (p, kind, latency) = fail_probability(s, t);
    if rng.unit() >= p {
        s.consecutive = 0;
        if s.breaker == BreakerState::HalfOpen {
            s.breaker = BreakerState::Closed;
            emit(
                t,
                RecoveryEvent::CircuitBreaker {
                    component: component(),
                    state: BreakerState::Closed,
                },
            );
        }
        s.requests[0] += 1;
        return;
    }
    emit(
        t,
        RecoveryEvent::ErrorObserved {
            component: component(),
            error_kind: kind.to_string(),
        },
    );
    emit(
        t,
        RecoveryEvent::RecoveryStarted {
            component: component(),
        },
    );
    let mut elapsed_ms = latency;
    for attempt in 2..=MAX_ATTEMPTS {
        let backoff = 50 << (attempt - 2);
        let jitter = rng.below(backoff / 2 + 1);
        elapsed_ms += backoff + jitter;
        let failed = rng.unit() < p;
        elapsed_ms += if failed { latency } else { 5 + rng.below(20) };
        if !failed {
            emit(
                t + elapsed_ms as i64,
                RecoveryEvent::RecoverySucceeded {
                    component: component(),
                    duration: Duration::from_millis(elapsed_ms),
                    attempt,
                },
            );
            s.consecutive = 0;
            if s.breaker == BreakerState::HalfOpen {
                s.breaker = BreakerState::Closed;
                emit(
                    t + elapsed_ms as i64,
                    RecoveryEvent::CircuitBreaker {
                        component: component(),
                        state: BreakerState::Closed,
                    },
                );
            }
            s.requests[1] += 1;
            return;
        }
    }
    let end = t + elapsed_ms as i64;
    emit(
        end,
        RecoveryEvent::RecoveryFailed {
            component: component(),
            duration: Duration::from_millis(elapsed_ms),
            attempt: MAX_ATTEMPTS,
            reason: kind.to_string(),
        },
    );
    s.consecutive += 1;
    if s.breaker == BreakerState::HalfOpen || s.consecutive >= TRIP_AFTER {
        if s.breaker != BreakerState::Open {
            emit(
                end,
                RecoveryEvent::CircuitBreaker {
                    component: component(),
                    state: BreakerState::Open,
                },
            );
        }
        s.breaker = BreakerState::Open;
        s.opened_at = end;
    }
    if s.fallback {
        emit(
            end,
            RecoveryEvent::FallbackUsed {
                component: component(),
            },
        );
        s.requests[2] += 1;
    } else {
        s.requests[3] += 1;
    }
}

/// Runs the demo until `stopped` turns true: every `tick`, advances the
/// simulation by `tick × speed`, records its events through `monitor`
/// (event log + derived series) and writes `demo_requests_total`.
pub async fn run(
    monitor: Arc<Monitor>,
    db: Arc<Db>,
    opts: DemoOptions,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let speed = if opts.speed.is_finite() && opts.speed > 0.0 {
        opts.speed
    } else {
        1.0
    };
    let tick = opts.tick.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sim = Arc::new(std::sync::Mutex::new(Sim::new(opts.seed)));
    let wall0 = crate::server::now_ms();
    let mut failures = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let (sim, monitor, db) = (sim.clone(), monitor.clone(), db.clone());
        let result = tokio::task::spawn_blocking(move || {
            let now = crate::server::now_ms();
            let mut sim = sim
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let target = ((now - wall0) as f64 * speed) as i64;
            let mut evs = Vec::new();
            let dt = target - sim.now_ms();
            sim.advance(dt, &mut evs);
            let stamp = |sim_ms: i64| (wall0 + (sim_ms as f64 / speed) as i64).min(now);
            monitor.record_at(evs.iter().map(|(t, e)| (e, stamp(*t))))?;
            let mut sets = Vec::new();
            let mut values = Vec::new();
            for (service, counts) in sim.requests() {
                for (outcome, n) in OUTCOMES.iter().zip(counts) {
                    sets.push(Labels::metric(
                        "demo_requests_total",
                        [("service", service), ("outcome", outcome)],
                    ));
                    values.push(n as f64);
                }
            }
            write(&db, monitor.feed(), &sets, &values, now).map(|_| ())
        })
        .await;
        let err = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // One line for the first failure, then one per hundred.
        if failures.is_multiple_of(100) {
            tracing::warn!(error = %err, failures, "demo workload step failed");
        }
        failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::derive::ComponentState;
    use std::collections::BTreeMap;

    fn run_for(seed: u64, ms: i64, step: i64) -> Vec<(i64, RecoveryEvent)> {
        let mut sim = Sim::new(seed);
        let mut out = Vec::new();
        while sim.now_ms() < ms {
            sim.advance(step, &mut out);
        }
        out
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = run_for(7, 120_000, 1000);
        assert_eq!(a, run_for(7, 120_000, 1000));
        assert_ne!(a, run_for(8, 120_000, 1000));
    }

    #[test]
    fn payments_breaker_opens_within_a_minute_and_closes_after_the_outage() {
        let evs = run_for(1, 150_000, 1000);
        let breaker: Vec<(i64, BreakerState)> = evs
            .iter()
            .filter_map(|(t, e)| match e {
                RecoveryEvent::CircuitBreaker { component, state } if component == "payments" => {
                    Some((*t, *state))
                }
                _ => None,
            })
            .collect();
        let opened = breaker.iter().find(|b| b.1 == BreakerState::Open).unwrap();
        assert!(opened.0 < 60_000, "{breaker:?}");
        // Half-open probes fail during the outage (reopening), and one
        // succeeds after it ends at 75 s.
        assert!(
            breaker
                .iter()
                .any(|b| b.1 == BreakerState::HalfOpen && b.0 < 75_000)
        );
        // A lucky probe may close it during the outage (3 % of calls get
        // through), but it trips again; the last change is the close after
        // the outage.
        let (t, last) = *breaker.last().unwrap();
        assert!(
            last == BreakerState::Closed && (75_000..100_000).contains(&t),
            "{breaker:?}"
        );
        let opens = breaker.iter().filter(|b| b.1 == BreakerState::Open).count();
        assert!(opens >= 4, "{breaker:?}");
        let mut st = ComponentState::default();
        let mut max_consecutive = 0;
        for (_, e) in evs.iter().filter(|(_, e)| e.component() == "payments") {
            st.apply(e);
            max_consecutive = max_consecutive.max(st.consecutive_failures);
        }
        assert!(max_consecutive >= 5, "{max_consecutive}");
        assert_eq!(st.breaker, Some(BreakerState::Closed));
    }

    #[test]
    fn inventory_burst_fails_more_than_fifteen_percent_of_recoveries() {
        let evs = run_for(3, CYCLE_MS, 1000);
        let mut by: BTreeMap<&str, ComponentState> = BTreeMap::new();
        for (t, e) in &evs {
            // Only the burst's middle (after jitter, it covers 260..640 s).
            if (300_000..600_000).contains(t) {
                by.entry(if e.component() == "inventory" {
                    "inventory"
                } else {
                    "rest"
                })
                .or_default()
                .apply(e);
            }
        }
        let (ok, failed) = by["inventory"].outcomes.unwrap();
        let ratio = failed as f64 / (ok + failed) as f64;
        assert!(ratio > 0.15 && ratio < 0.6, "{ok} {failed}");
    }

    #[test]
    fn search_burst_is_slow_and_fails_more_than_fifteen_percent() {
        let evs = run_for(3, CYCLE_MS, 1000);
        let mut st = ComponentState::default();
        // The middle of the burst (660 s ± 20 s for 8 minutes).
        for (_, e) in evs
            .iter()
            .filter(|(t, e)| (700_000..1_100_000).contains(t) && e.component() == "search")
        {
            st.apply(e);
        }
        let (ok, failed) = st.outcomes.unwrap();
        let ratio = failed as f64 / (ok + failed) as f64;
        assert!(ratio > 0.15, "{ok} {failed}");
        // p99 above RecoverySlow's 5 s, in the buckets the rule reads.
        let d = &st.durations;
        let le5 = d.cumulative[BUCKETS_5S];
        assert!((d.count - le5) as f64 > 0.01 * d.count as f64, "{d:?}");
    }

    /// Index of the 5 s bound in `BUCKETS`.
    const BUCKETS_5S: usize = 11;

    #[test]
    fn the_5s_bucket_index_is_right() {
        assert_eq!(crate::monitor::BUCKETS[BUCKETS_5S], 5.0);
    }
}
