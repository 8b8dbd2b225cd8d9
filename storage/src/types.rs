//! The data model shared by every part of the engine: series identity,
//! samples, label sets and label matchers.
//!
//! Invariants:
//! - A [`Labels`] value is always sorted by label name and holds no duplicate
//!   names and no empty values (an empty value means "label absent", as in
//!   Prometheus). The metric name is the `__name__` label.
//! - A [`SeriesId`] is assigned once by the index and never reused.

use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Stable identifier of a series, assigned by the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId(pub u64);

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// One observation of a series. NaN payloads (such as Prometheus's stale
/// marker) are stored bit-exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub ts: Timestamp,
    pub value: f64,
}

impl Sample {
    pub fn new(ts: Timestamp, value: f64) -> Self {
        Self { ts, value }
    }

    /// Bit-exact equality (NaN == NaN when their payloads match).
    pub fn bit_eq(&self, other: &Sample) -> bool {
        self.ts == other.ts && self.value.to_bits() == other.value.to_bits()
    }
}

/// The bit pattern Prometheus writes to mark a series stale.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is Prometheus's stale marker.
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One `name="value"` pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A sorted, duplicate-free label set that identifies a series.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs in any order. Pairs with an empty value
    /// are dropped; when a name repeats, the last value wins.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .filter(|l| !l.value.is_empty())
            .collect();
        // Stable sort keeps input order among equal names, so the last one
        // is the one `dedup_by` must keep.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.reverse();
        v.dedup_by(|a, b| a.name == b.name);
        v.reverse();
        Labels(v)
    }

    /// A label set for `metric` with the given extra labels.
    pub fn metric<N: Into<String>, V: Into<String>>(
        metric: &str,
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let pairs = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .chain(std::iter::once((
                METRIC_NAME.to_string(),
                metric.to_string(),
            )));
        Self::from_pairs(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Canonical byte form used as the index key: `name \xff value \xff ...`.
    /// `\xff` never occurs in UTF-8, so the encoding is unambiguous.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for l in &self.0 {
            out.extend_from_slice(l.name.as_bytes());
            out.push(0xff);
            out.extend_from_slice(l.value.as_bytes());
            out.push(0xff);
        }
    }

    /// Inverse of [`Labels::encode_into`]; `None` when `bytes` is not a valid
    /// canonical encoding.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut labels = Vec::new();
        let mut parts = bytes.split(|b| *b == 0xff);
        loop {
            let name = parts.next()?;
            if name.is_empty() {
                // The trailing separator leaves one empty part at the end.
                return parts.next().is_none().then_some(Labels(labels));
            }
            let value = parts.next()?;
            labels.push(Label {
                name: std::str::from_utf8(name).ok()?.to_string(),
                value: std::str::from_utf8(value).ok()?.to_string(),
            });
        }
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="x", b="y"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// How a [`Matcher`] compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// A label matcher with Prometheus semantics: a missing label has the value
/// `""`, and regexes are anchored at both ends.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

/// A matcher's regular expression did not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regex in matcher {name}=~{pattern:?}: {source}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$")).map_err(|source| MatcherError {
                    name: name.to_string(),
                    pattern: value.to_string(),
                    source,
                })?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    pub fn equal(name: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            op: MatchOp::Equal,
            value: value.to_string(),
            regex: None,
        }
    }

    /// Whether a label value (`""` when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_deduped_and_roundtrip() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        let names: Vec<_> = l
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, vec![("a", "2"), ("b", "3")]);
        let mut buf = Vec::new();
        l.encode_into(&mut buf);
        assert_eq!(Labels::decode(&buf), Some(l));
        assert_eq!(Labels::decode(b"a\xff"), None);
        assert_eq!(Labels::decode(&[]), Some(Labels::default()));
    }

    #[test]
    fn matcher_semantics_follow_prometheus() {
        let re = Matcher::new("job", MatchOp::Regex, "api|web").unwrap();
        assert!(re.matches("api"));
        assert!(!re.matches("api2"), "regexes are anchored");
        let nre = Matcher::new("job", MatchOp::NotRegex, "a.*").unwrap();
        assert!(nre.matches_empty());
        assert!(!Matcher::equal("job", "x").matches_empty());
        assert!(Matcher::new("x", MatchOp::Regex, "(").is_err());
    }

    #[test]
    fn display_is_prometheus_notation() {
        let l = Labels::metric("up", [("job", "node")]);
        assert_eq!(l.to_string(), "up{job=\"node\"}");
    }
}
