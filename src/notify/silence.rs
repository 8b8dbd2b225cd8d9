//! Silences: Alertmanager's (matchers incl. regex, start/end, creator,
//! comment) plus recurring maintenance windows (weekdays + time of day +
//! duration, in UTC or a fixed offset), persisted with the notifier state.
//!
//! Invariants:
//! - A silence mutes an alert only while its state is `active`: between
//!   `starts_at` and `ends_at`, and for a recurring one also inside one of
//!   its windows (a window may cross midnight; it belongs to the weekday
//!   it starts on).
//! - Input is validated before it is stored; errors name the field.
//!   Expiring sets `ends_at` to now; expired silences are kept for
//!   [`KEEP_EXPIRED_MS`] so the API can still show them.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};
use tidemark_storage::{MatchOp, Matcher};

use crate::notify::time::weekday_of_day;

/// How long an expired silence stays listed (Alertmanager: 5 days).
pub const KEEP_EXPIRED_MS: i64 = 5 * 86_400_000;

const DAY_MS: i64 = 86_400_000;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A matcher as the silence API spells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A recurring window: `days` at `start` (HH:MM) for `duration`, in
/// `timezone` (`UTC` or a fixed offset like `+02:00`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    pub days: Vec<String>,
    pub start: String,
    pub duration: String,
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".to_string()
}

/// A [`Recurrence`] checked and in numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    days_mask: u8,
    start_ms: i64,
    duration_ms: i64,
    offset_ms: i64,
}

impl Recurrence {
    fn window(&self) -> Result<Window, String> {
        let mut days_mask = 0u8;
        if self.days.is_empty() {
            return Err("recurrence.days must name at least one day".into());
        }
        for d in &self.days {
            let i = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("recurrence.days: {d:?} is not one of {DAYS:?}"))?;
            days_mask |= 1 << i;
        }
        let start_ms = parse_hhmm(&self.start)
            .ok_or_else(|| format!("recurrence.start {:?} is not HH:MM", self.start))?;
        let duration_ms = crate::config::duration::parse_duration(&self.duration)
            .map_err(|e| format!("recurrence.duration: {e}"))?
            .as_millis() as i64;
        if duration_ms <= 0 || duration_ms > 7 * DAY_MS {
            return Err("recurrence.duration must be positive and at most 7d".into());
        }
        let offset_ms = parse_offset(&self.timezone).ok_or_else(|| {
            format!(
                "recurrence.timezone {:?} must be UTC or a fixed offset like +02:00",
                self.timezone
            )
        })?;
        Ok(Window {
            days_mask,
            start_ms,
            duration_ms,
            offset_ms,
        })
    }
}

fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h * 60 + m) * 60_000)
}

fn parse_offset(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let minutes = parse_hhmm(&s[1..])? / 60_000;
    (minutes <= 14 * 60).then_some(sign * minutes * 60_000)
}

impl Window {
    fn contains(&self, t_ms: i64) -> bool {
        let local = t_ms + self.offset_ms;
        let day = local.div_euclid(DAY_MS);
        (0..=7).any(|back| {
            let d = day - back;
            let start = d * DAY_MS + self.start_ms;
            self.days_mask & (1 << weekday_of_day(d)) != 0
                && start <= local
                && local < start + self.duration_ms
        })
    }
}

/// A stored silence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    pub recurrence: Option<Recurrence>,
    pub updated_at_ms: i64,
    #[serde(skip)]
    compiled: Vec<Matcher>,
    #[serde(skip)]
    window: Option<Window>,
}

/// What the API sends to create or update a silence (times in ms).
#[derive(Clone, Debug)]
pub struct SilenceInput {
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub created_by: String,
    pub comment: String,
    pub recurrence: Option<Recurrence>,
}

/// `active`, `pending` or `expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl Silence {
    fn compile(&mut self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("matchers must not be empty".into());
        }
        let mut compiled = Vec::with_capacity(self.matchers.len());
        for (i, m) in self.matchers.iter().enumerate() {
            if m.name.is_empty() {
                return Err(format!("matchers[{i}].name must not be empty"));
            }
            let op = match (m.is_regex, m.is_equal) {
                (false, true) => MatchOp::Equal,
                (false, false) => MatchOp::NotEqual,
                (true, true) => MatchOp::Regex,
                (true, false) => MatchOp::NotRegex,
            };
            compiled.push(
                Matcher::new(&m.name, op, &m.value).map_err(|e| format!("matchers[{i}]: {e}"))?,
            );
        }
        if compiled.iter().all(Matcher::matches_empty) {
            return Err(
                "matchers: at least one matcher must not match the empty string (it would silence everything)"
                    .into(),
            );
        }
        self.compiled = compiled;
        self.window = self
            .recurrence
            .as_ref()
            .map(Recurrence::window)
            .transpose()?;
        Ok(())
    }

    /// The state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else if now_ms < self.starts_at_ms || self.window.is_some_and(|w| !w.contains(now_ms)) {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether it mutes `labels` at `now_ms`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active
            && crate::notify::route::matches_all(&self.compiled, labels)
    }
}

/// All silences, by id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Silences {
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    /// Recompiles matchers after loading; drops (and names) invalid ones.
    pub fn after_load(&mut self) -> Vec<String> {
        let mut bad = Vec::new();
        self.by_id.retain(|id, s| match s.compile() {
            Ok(()) => true,
            Err(e) => {
                bad.push(format!("silence {id}: {e}"));
                false
            }
        });
        bad
    }

    /// Creates a silence, or updates the one with `input.id`.
    ///
    /// # Errors
    /// What is wrong with the input, naming the field.
    pub fn upsert(&mut self, input: SilenceInput, now_ms: i64) -> Result<String, String> {
        if input.created_by.trim().is_empty() {
            return Err("createdBy must not be empty".into());
        }
        if input.comment.trim().is_empty() {
            return Err("comment must not be empty".into());
        }
        if input.ends_at_ms <= input.starts_at_ms {
            return Err("endsAt must be after startsAt".into());
        }
        if input.ends_at_ms <= now_ms {
            return Err("endsAt must be in the future".into());
        }
        let id = match input.id {
            Some(id) => {
                if !self.by_id.contains_key(&id) {
                    return Err(format!("id: no silence {id:?}"));
                }
                id
            }
            None => new_id(now_ms, self.by_id.len()),
        };
        let mut s = Silence {
            id: id.clone(),
            matchers: input.matchers,
            starts_at_ms: input.starts_at_ms,
            ends_at_ms: input.ends_at_ms,
            created_by: input.created_by,
            comment: input.comment,
            recurrence: input.recurrence,
            updated_at_ms: now_ms,
            compiled: Vec::new(),
            window: None,
        };
        s.compile()?;
        self.by_id.insert(id.clone(), s);
        Ok(id)
    }

    /// Expires silence `id` now.
    ///
    /// # Errors
    /// Unknown id, or already expired.
    pub fn expire(&mut self, id: &str, now_ms: i64) -> Result<(), String> {
        let s = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| format!("no silence {id:?}"))?;
        if s.state(now_ms) == SilenceState::Expired {
            return Err(format!("silence {id:?} is already expired"));
        }
        s.ends_at_ms = now_ms;
        s.starts_at_ms = s.starts_at_ms.min(now_ms);
        s.updated_at_ms = now_ms;
        Ok(())
    }

    /// The id of an active silence muting `labels`, if any.
    pub fn muting(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> Option<&str> {
        self.by_id
            .values()
            .find(|s| s.mutes(labels, now_ms))
            .map(|s| s.id.as_str())
    }

    /// Drops silences expired more than [`KEEP_EXPIRED_MS`] ago.
    pub fn gc(&mut self, now_ms: i64) -> bool {
        let before = self.by_id.len();
        self.by_id
            .retain(|_, s| s.ends_at_ms + KEEP_EXPIRED_MS > now_ms);
        before != self.by_id.len()
    }

    pub fn list(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }
}

fn new_id(now_ms: i64, n: usize) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms);
    h.write_usize(n);
    let a = h.finish();
    h.write_u8(1);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn input(m: Vec<SilenceMatcher>, recurrence: Option<Recurrence>) -> SilenceInput {
        SilenceInput {
            id: None,
            matchers: m,
            starts_at_ms: 0,
            ends_at_ms: 100 * DAY_MS,
            created_by: "ops".into(),
            comment: "maintenance".into(),
            recurrence,
        }
    }

    fn m(name: &str, value: &str, is_regex: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal: true,
        }
    }

    #[test]
    fn regex_matchers_times_and_expiry() {
        let mut s = Silences::default();
        let mut i = input(vec![m("job", "db.*", true)], None);
        i.starts_at_ms = 1000;
        let id = s.upsert(i, 0).unwrap();
        let db = l(&[("job", "db1")]);
        assert_eq!(s.muting(&db, 999), None);
        assert_eq!(s.muting(&db, 1000), Some(id.as_str()));
        assert_eq!(s.muting(&l(&[("job", "api")]), 1000), None);
        s.expire(&id, 2000).unwrap();
        assert_eq!(s.muting(&db, 2000), None);
        assert!(s.expire(&id, 2001).unwrap_err().contains("already expired"));
    }

    #[test]
    fn update_by_id_replaces_matchers_and_unknown_ids_are_refused() {
        let mut s = Silences::default();
        let id = s
            .upsert(input(vec![m("job", "a", false)], None), 0)
            .unwrap();
        let mut i = input(vec![m("job", "b", false)], None);
        i.id = Some(id.clone());
        assert_eq!(s.upsert(i, 10).unwrap(), id);
        assert_eq!(s.list().count(), 1);
        assert_eq!(s.muting(&l(&[("job", "a")]), 20), None);
        assert_eq!(s.muting(&l(&[("job", "b")]), 20), Some(id.as_str()));
        let mut i = input(vec![m("job", "c", false)], None);
        i.id = Some("nope".into());
        assert!(s.upsert(i, 10).unwrap_err().starts_with("id:"));
        // Survives a JSON round trip (the state file) with matchers recompiled.
        let mut back: Silences = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(back.after_load().is_empty());
        assert_eq!(back.muting(&l(&[("job", "b")]), 20), Some(id.as_str()));
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut s = Silences::default();
        let e = s
            .upsert(input(vec![m("job", ".*", true)], None), 0)
            .unwrap_err();
        assert!(e.contains("empty string"), "{e}");
        let e = s
            .upsert(input(vec![m("job", "(", true)], None), 0)
            .unwrap_err();
        assert!(e.contains("matchers[0]"), "{e}");
        let mut i = input(vec![m("a", "b", false)], None);
        i.comment = " ".into();
        assert!(s.upsert(i, 0).unwrap_err().contains("comment"));
        let r = Recurrence {
            days: vec!["funday".into()],
            start: "22:00".into(),
            duration: "2h".into(),
            timezone: "UTC".into(),
        };
        let e = s
            .upsert(input(vec![m("a", "b", false)], Some(r)), 0)
            .unwrap_err();
        assert!(e.contains("recurrence.days") && e.contains("funday"), "{e}");
        assert_eq!(s.list().count(), 0);
    }

    #[test]
    fn recurring_window_crosses_midnight_in_a_fixed_offset() {
        let mut s = Silences::default();
        // Saturdays 23:00-01:00 at +02:00, i.e. Sat 21:00-23:00 UTC.
        let r = Recurrence {
            days: vec!["sat".into()],
            start: "23:00".into(),
            duration: "2h".into(),
            timezone: "+02:00".into(),
        };
        s.upsert(input(vec![m("a", "b", false)], Some(r)), 0)
            .unwrap();
        let x = l(&[("a", "b")]);
        // 1970-01-03 was a Saturday (day 2).
        let sat = 2 * DAY_MS;
        let h = 3_600_000;
        assert!(s.muting(&x, sat + 20 * h + 59 * 60_000).is_none());
        assert!(s.muting(&x, sat + 21 * h).is_some());
        assert!(s.muting(&x, sat + 22 * h + 59 * 60_000).is_some());
        assert!(s.muting(&x, sat + 23 * h).is_none());
        // Next Saturday too, not the Sunday or Friday.
        assert!(s.muting(&x, sat + 7 * DAY_MS + 22 * h).is_some());
        assert!(s.muting(&x, sat + DAY_MS + 22 * h).is_none());
        assert!(s.muting(&x, sat - DAY_MS + 22 * h).is_none());
        let st = s.list().next().unwrap();
        assert_eq!(st.state(sat + 12 * h), SilenceState::Pending);
        assert_eq!(st.state(sat + 22 * h), SilenceState::Active);
    }
}
