//! Label sets and label matchers.
//!
//! Invariants: a [`Labels`] is sorted by name, holds each name at most once
//! and never holds an empty value (Prometheus treats an empty value as an
//! absent label). `__name__` is an ordinary label here.
//! The pairs live behind an `Arc` and each name and value is an
//! `Arc<str>`, so cloning a label set (every series that flows through an
//! aggregation, a binary operation or an alert's state does) is a
//! reference-count increment, and a derived set (`without_name`, `keep`)
//! allocates one vector, not one string per label; mutation copies on
//! write.
//! A [`LabelMatcher`] with a regex is anchored (`^(?:re)$`), and a missing
//! label matches as the empty string.

use std::fmt;
use std::sync::Arc;

use regex::Regex;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of `(name, value)` pairs.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<Vec<Label>>);

/// One `(name, value)` pair of a [`Labels`].
pub type Label = (Arc<str>, Arc<str>);

impl Labels {
    /// The empty label set.
    pub fn new() -> Self {
        Labels(Arc::new(Vec::new()))
    }

    /// Builds a label set from pairs in any order; later duplicates win and
    /// empty values are dropped.
    pub fn from_pairs<K: Into<Arc<str>>, V: Into<Arc<str>>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let pairs: Vec<Label> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Pairs from the engine are already sorted, unique and non-empty:
        // take them as they are instead of inserting one by one.
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) && pairs.iter().all(|(_, v)| !v.is_empty()) {
            return Labels(Arc::new(pairs));
        }
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.set_shared(&k, v);
        }
        l
    }

    /// The pairs, sorted by name.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no label.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The value of `name`, or `""` when absent (Prometheus semantics).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: String) {
        self.set_shared(name, value.into());
    }

    /// [`Labels::set`] with a value that may be shared.
    pub fn set_shared(&mut self, name: &str, value: Arc<str>) {
        match self.0.binary_search_by(|(k, _)| (**k).cmp(name)) {
            Ok(i) if value.is_empty() => {
                Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) if self.0[i].1 == value => {}
            Ok(i) => Arc::make_mut(&mut self.0)[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => Arc::make_mut(&mut self.0).insert(i, (name.into(), value)),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|(k, _)| (**k).cmp(name)) {
            Arc::make_mut(&mut self.0).remove(i);
        }
    }

    /// A copy without `__name__`.
    pub fn without_name(&self) -> Labels {
        if self.get(METRIC_NAME).is_none() {
            return self.clone();
        }
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(k, _)| &**k != METRIC_NAME)
                .cloned()
                .collect(),
        ))
    }

    /// Keeps only the listed names.
    pub fn keep(&mut self, names: &[String]) {
        if self.0.iter().all(|(k, _)| names.iter().any(|n| **n == **k)) {
            return;
        }
        Arc::make_mut(&mut self.0).retain(|(k, _)| names.iter().any(|n| **n == **k));
    }

    /// Removes the listed names.
    pub fn drop_names(&mut self, names: &[String]) {
        if !self.0.iter().any(|(k, _)| names.iter().any(|n| **n == **k)) {
            return;
        }
        Arc::make_mut(&mut self.0).retain(|(k, _)| !names.iter().any(|n| **n == **k));
    }

    /// Appends the match signature of this set to `buf`: with `on`, the
    /// labels in `names`; otherwise every label except `names` and
    /// `__name__`. Equal signatures mean "these series match".
    pub(crate) fn signature(&self, on: bool, names: &[String], buf: &mut Vec<u8>) {
        buf.clear();
        for (k, v) in self.0.iter() {
            let listed = names.iter().any(|n| **n == **k);
            let include = if on {
                listed
            } else {
                !listed && &**k != METRIC_NAME
            };
            if include {
                buf.extend_from_slice(k.as_bytes());
                buf.push(0xff);
                buf.extend_from_slice(v.as_bytes());
                buf.push(0xff);
            }
        }
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The comparison a [`LabelMatcher`] performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored)
    Regex,
    /// `!~` (anchored)
    NotRegex,
}

impl MatchOp {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One `name op "value"` condition of a selector.
#[derive(Clone)]
pub struct LabelMatcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Value or regex source, as written (unanchored).
    pub value: String,
    re: Option<Regex>,
}

impl LabelMatcher {
    /// Builds a matcher; regexes are compiled anchored.
    ///
    /// # Errors
    /// The regex compiler's message when `value` is not a valid regex.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, regex::Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?:{value})$"))?),
            _ => None,
        };
        Ok(LabelMatcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// `name = value`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        LabelMatcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// Whether a label value (`""` when the label is missing) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a series with these labels matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get_or_empty(&self.name))
    }
}

impl PartialEq for LabelMatcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_sorted_and_drops_empty() {
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        l.set("a", String::new());
        assert_eq!(l.get("a"), None);
        assert_eq!(l.get_or_empty("a"), "");
    }

    #[test]
    fn a_clone_is_unaffected_by_changes_to_the_original() {
        let mut a = Labels::from_pairs([("__name__", "up"), ("a", "1"), ("b", "2")]);
        let b = a.clone();
        a.set("a", "9".into());
        a.remove("b");
        a.keep(&["a".into()]);
        let mut c = b.clone();
        c.drop_names(&["a".into()]);
        assert_eq!(a.to_string(), r#"{a="9"}"#);
        assert_eq!(b.to_string(), r#"{__name__="up", a="1", b="2"}"#);
        assert_eq!(c.to_string(), r#"{__name__="up", b="2"}"#);
        assert_eq!(b.without_name().to_string(), r#"{a="1", b="2"}"#);
    }

    #[test]
    fn regex_is_anchored_and_missing_label_is_empty() {
        let m = LabelMatcher::new("job", MatchOp::Regex, "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("api2"));
        let m = LabelMatcher::new("job", MatchOp::Regex, ".*").unwrap();
        assert!(m.matches_labels(&Labels::new()));
        let m = LabelMatcher::new("job", MatchOp::NotEqual, "").unwrap();
        assert!(!m.matches_labels(&Labels::new()));
    }
}
