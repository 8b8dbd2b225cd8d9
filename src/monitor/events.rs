//! The recovery vocabulary as a typed value: [`RecoveryEvent`] (what an
//! embedding application reports) and its conversion to and from the event
//! log's record, `tidemark_storage::events::Event` (kind, labels, JSON
//! fields), as `src/server/http-api.md` ("Events") defines it.
//!
//! Invariants:
//! - Every recovery event carries a non-empty `component` label; the
//!   conversion from an [`Event`] fails with an error naming the missing or
//!   malformed label or field, never silently.
//! - `RecoveryEvent -> Event -> RecoveryEvent` is the identity (durations
//!   round-trip through `duration_seconds` as f64 seconds, exact to the
//!   nanosecond for durations below ~104 days).
//! - Kinds outside the vocabulary are not errors: [`RecoveryEvent::from_event`]
//!   answers `Ok(None)` and the event is stored and shown, not derived.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use tidemark_storage::Labels;
pub use tidemark_storage::events::Event;

/// A circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The name in events: `closed`, `half_open`, `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The value of `circuit_breaker_state`: 0 closed, 0.5 half-open, 1 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 0.5,
            BreakerState::Open => 1.0,
        }
    }

    /// The inverse of [`BreakerState::gauge_value`] (seeding after a restart).
    pub fn from_gauge_value(v: f64) -> Option<Self> {
        if v == 0.0 {
            Some(BreakerState::Closed)
        } else if v == 0.5 {
            Some(BreakerState::HalfOpen)
        } else if v == 1.0 {
            Some(BreakerState::Open)
        } else {
            None
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "closed" => Some(BreakerState::Closed),
            "half_open" => Some(BreakerState::HalfOpen),
            "open" => Some(BreakerState::Open),
            _ => None,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of the recovery vocabulary. Every variant names the
/// `component` (a service, a dependency, a client) it is about.
#[derive(Clone, Debug, PartialEq)]
pub enum RecoveryEvent {
    /// An error was observed; `error_kind` becomes label `kind` of
    /// `errors_total` (e.g. `timeout`, `connection_refused`).
    ErrorObserved {
        component: String,
        error_kind: String,
    },
    /// A recovery (retry loop, failover) began.
    RecoveryStarted { component: String },
    /// A recovery ended well after `attempt` attempts, taking `duration`.
    RecoverySucceeded {
        component: String,
        duration: Duration,
        attempt: u32,
    },
    /// A recovery gave up after `attempt` attempts, taking `duration`.
    RecoveryFailed {
        component: String,
        duration: Duration,
        attempt: u32,
        reason: String,
    },
    /// A circuit breaker changed state.
    CircuitBreaker {
        component: String,
        state: BreakerState,
    },
    /// A fallback answered instead of the component.
    FallbackUsed { component: String },
}

/// The event kinds the monitor derives series from.
pub const KINDS: [&str; 6] = [
    "error_observed",
    "recovery_started",
    "recovery_succeeded",
    "recovery_failed",
    "circuit_breaker",
    "fallback_used",
];

/// Why an event of a recovery kind is not a valid [`RecoveryEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryEventError {
    #[error("{kind} event: label `component` is missing or empty")]
    MissingComponent { kind: &'static str },
    #[error("{kind} event: `fields` is not a JSON object: {message}")]
    FieldsNotObject { kind: &'static str, message: String },
    #[error("{kind} event: field `{field}` is missing")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{kind} event: field `{field}` {expected}, got {got}")]
    BadField {
        kind: &'static str,
        field: &'static str,
        expected: &'static str,
        got: String,
    },
}

impl RecoveryEvent {
    /// The component the event is about.
    pub fn component(&self) -> &str {
        match self {
            RecoveryEvent::ErrorObserved { component, .. }
            | RecoveryEvent::RecoveryStarted { component }
            | RecoveryEvent::RecoverySucceeded { component, .. }
            | RecoveryEvent::RecoveryFailed { component, .. }
            | RecoveryEvent::CircuitBreaker { component, .. }
            | RecoveryEvent::FallbackUsed { component } => component,
        }
    }

    /// The event kind (`error_observed`, ...), one of [`KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            RecoveryEvent::ErrorObserved { .. } => KINDS[0],
            RecoveryEvent::RecoveryStarted { .. } => KINDS[1],
            RecoveryEvent::RecoverySucceeded { .. } => KINDS[2],
            RecoveryEvent::RecoveryFailed { .. } => KINDS[3],
            RecoveryEvent::CircuitBreaker { .. } => KINDS[4],
            RecoveryEvent::FallbackUsed { .. } => KINDS[5],
        }
    }

    /// The event-log record of this event at `ts_ms`: label `component`,
    /// the variant's data as JSON fields.
    pub fn to_event(&self, ts_ms: i64) -> Event {
        let mut f = Map::new();
        match self {
            RecoveryEvent::ErrorObserved { error_kind, .. } => {
                f.insert("error_kind".into(), Value::from(error_kind.as_str()));
            }
            RecoveryEvent::RecoveryStarted { .. } | RecoveryEvent::FallbackUsed { .. } => {}
            RecoveryEvent::RecoverySucceeded {
                duration, attempt, ..
            } => {
                f.insert("duration_seconds".into(), seconds(*duration));
                f.insert("attempt".into(), Value::from(*attempt));
            }
            RecoveryEvent::RecoveryFailed {
                duration,
                attempt,
                reason,
                ..
            } => {
                f.insert("duration_seconds".into(), seconds(*duration));
                f.insert("attempt".into(), Value::from(*attempt));
                f.insert("reason".into(), Value::from(reason.as_str()));
            }
            RecoveryEvent::CircuitBreaker { state, .. } => {
                f.insert("state".into(), Value::from(state.as_str()));
            }
        }
        Event {
            ts_ms,
            kind: self.kind().to_string(),
            labels: Labels::from_pairs([("component", self.component())]),
            fields: Value::Object(f).to_string(),
        }
    }

    /// The recovery event an event-log record holds: `Ok(None)` for kinds
    /// outside the vocabulary.
    ///
    /// # Errors
    /// A recovery kind without a `component` label, or with a missing or
    /// mistyped field; the error names it.
    pub fn from_event(ev: &Event) -> Result<Option<Self>, RecoveryEventError> {
        let Some(kind) = KINDS.iter().copied().find(|k| *k == ev.kind) else {
            return Ok(None);
        };
        let component = match ev.labels.get("component") {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => return Err(RecoveryEventError::MissingComponent { kind }),
        };
        let fields = Fields::parse(kind, &ev.fields)?;
        let event = match kind {
            "error_observed" => RecoveryEvent::ErrorObserved {
                component,
                error_kind: fields.string("error_kind")?.unwrap_or_default(),
            },
            "recovery_started" => RecoveryEvent::RecoveryStarted { component },
            "recovery_succeeded" => RecoveryEvent::RecoverySucceeded {
                component,
                duration: fields.duration()?,
                attempt: fields.attempt()?,
            },
            "recovery_failed" => RecoveryEvent::RecoveryFailed {
                component,
                duration: fields.duration()?,
                attempt: fields.attempt()?,
                reason: fields.string("reason")?.unwrap_or_default(),
            },
            "circuit_breaker" => {
                let s = fields
                    .string("state")?
                    .ok_or(RecoveryEventError::MissingField {
                        kind,
                        field: "state",
                    })?;
                let state = BreakerState::parse(&s).ok_or(RecoveryEventError::BadField {
                    kind,
                    field: "state",
                    expected: "must be \"closed\", \"open\" or \"half_open\"",
                    got: format!("{s:?}"),
                })?;
                RecoveryEvent::CircuitBreaker { component, state }
            }
            _ => RecoveryEvent::FallbackUsed { component },
        };
        if let RecoveryEvent::ErrorObserved { error_kind, .. } = &event
            && error_kind.is_empty()
        {
            return Err(RecoveryEventError::MissingField {
                kind,
                field: "error_kind",
            });
        }
        Ok(Some(event))
    }
}

fn seconds(d: Duration) -> Value {
    Value::from(d.as_secs_f64())
}

/// The JSON fields of one event, with typed getters that name the field
/// in their errors.
struct Fields {
    kind: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    fn parse(kind: &'static str, text: &str) -> Result<Self, RecoveryEventError> {
        if text.trim().is_empty() {
            return Ok(Fields {
                kind,
                map: Map::new(),
            });
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Fields { kind, map }),
            Ok(Value::Null) => Ok(Fields {
                kind,
                map: Map::new(),
            }),
            Ok(other) => Err(RecoveryEventError::FieldsNotObject {
                kind,
                message: format!("got {other}"),
            }),
            Err(e) => Err(RecoveryEventError::FieldsNotObject {
                kind,
                message: e.to_string(),
            }),
        }
    }

    fn bad(&self, field: &'static str, expected: &'static str, got: &Value) -> RecoveryEventError {
        RecoveryEventError::BadField {
            kind: self.kind,
            field,
            expected,
            got: got.to_string(),
        }
    }

    fn string(&self, field: &'static str) -> Result<Option<String>, RecoveryEventError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(field, "must be a string", v)),
        }
    }

    /// `duration_seconds`: required, a finite number ≥ 0.
    fn duration(&self) -> Result<Duration, RecoveryEventError> {
        const F: &str = "duration_seconds";
        let v = self.map.get(F).ok_or(RecoveryEventError::MissingField {
            kind: self.kind,
            field: F,
        })?;
        v.as_f64()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| self.bad(F, "must be a finite number of seconds >= 0", v))
    }

    /// `attempt`: an integer ≥ 1; 1 when absent.
    fn attempt(&self) -> Result<u32, RecoveryEventError> {
        match self.map.get("attempt") {
            None | Some(Value::Null) => Ok(1),
            Some(v) => v
                .as_u64()
                .and_then(|a| u32::try_from(a).ok())
                .filter(|a| *a >= 1)
                .ok_or_else(|| self.bad("attempt", "must be an integer >= 1", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<RecoveryEvent> {
        let c = || "payments".to_string();
        vec![
            RecoveryEvent::ErrorObserved {
                component: c(),
                error_kind: "timeout".into(),
            },
            RecoveryEvent::RecoveryStarted { component: c() },
            RecoveryEvent::RecoverySucceeded {
                component: c(),
                duration: Duration::from_millis(250),
                attempt: 2,
            },
            RecoveryEvent::RecoveryFailed {
                component: c(),
                duration: Duration::from_micros(3_500_001),
                attempt: 3,
                reason: "upstream 503".into(),
            },
            RecoveryEvent::CircuitBreaker {
                component: c(),
                state: BreakerState::HalfOpen,
            },
            RecoveryEvent::FallbackUsed { component: c() },
        ]
    }

    #[test]
    fn every_kind_round_trips_through_the_event_record() {
        for ev in all() {
            let rec = ev.to_event(1_700_000_000_123);
            assert_eq!(rec.kind, ev.kind());
            assert_eq!(rec.ts_ms, 1_700_000_000_123);
            assert_eq!(rec.labels.get("component"), Some("payments"));
            assert_eq!(RecoveryEvent::from_event(&rec), Ok(Some(ev)));
        }
        let rec = all()[3].to_event(0);
        let fields: Value = serde_json::from_str(&rec.fields).unwrap();
        assert_eq!(
            fields,
            serde_json::json!({"duration_seconds": 3.500001, "attempt": 3, "reason": "upstream 503"})
        );
    }

    fn ev(kind: &str, labels: &[(&str, &str)], fields: &str) -> Event {
        Event {
            ts_ms: 5,
            kind: kind.into(),
            labels: Labels::from_pairs(labels.iter().copied()),
            fields: fields.into(),
        }
    }

    #[test]
    fn other_kinds_are_not_derived_and_bad_ones_say_what_is_wrong() {
        assert_eq!(
            RecoveryEvent::from_event(&ev("deploy", &[], "{}")),
            Ok(None)
        );
        let comp = [("component", "db")];
        let err = |kind: &str, labels: &[(&str, &str)], fields: &str| {
            RecoveryEvent::from_event(&ev(kind, labels, fields))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("fallback_used", &[("component", "")], ""),
            "fallback_used event: label `component` is missing or empty"
        );
        assert_eq!(
            err("recovery_succeeded", &comp, "{\"attempt\":1}"),
            "recovery_succeeded event: field `duration_seconds` is missing"
        );
        assert_eq!(
            err("recovery_failed", &comp, "{\"duration_seconds\":-1}"),
            "recovery_failed event: field `duration_seconds` must be a finite number of seconds >= 0, got -1"
        );
        assert_eq!(
            err(
                "recovery_failed",
                &comp,
                "{\"duration_seconds\":1,\"attempt\":0}"
            ),
            "recovery_failed event: field `attempt` must be an integer >= 1, got 0"
        );
        assert_eq!(
            err("circuit_breaker", &comp, "{\"state\":\"ajar\"}"),
            "circuit_breaker event: field `state` must be \"closed\", \"open\" or \"half_open\", got \"ajar\""
        );
        assert_eq!(
            err("error_observed", &comp, "{}"),
            "error_observed event: field `error_kind` is missing"
        );
        assert!(err("error_observed", &comp, "[1]").contains("not a JSON object"));
        // Optional fields: attempt defaults to 1, reason to "".
        assert_eq!(
            RecoveryEvent::from_event(&ev("recovery_failed", &comp, "{\"duration_seconds\":0.5}")),
            Ok(Some(RecoveryEvent::RecoveryFailed {
                component: "db".into(),
                duration: Duration::from_millis(500),
                attempt: 1,
                reason: String::new(),
            }))
        );
    }
}
