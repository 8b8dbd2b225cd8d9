//! Label matchers in Prometheus selector syntax and the routing tree
//! (Alertmanager semantics: depth-first, first matching child wins unless
//! it sets `continue`, a route with no matching child takes the alert).
//!
//! Invariants:
//! - A [`Route`] is built once from validated configuration, with every
//!   inheritable option resolved, so matching never consults the parent.
//! - Route keys follow Alertmanager (`{}` for the root, `{}/{a="b"}` for
//!   a child), so group keys look the same as Alertmanager's.

use std::collections::BTreeMap;
use std::time::Duration;

use tidemark_storage::{MatchOp, Matcher};

use crate::notify::config::RouteConfig;

/// Parses matchers; each string is one matcher (`severity="critical"`,
/// `env=~"prod|stage"`, `team!="x"`, `a!~"b.*"`, value quoted with `"` or
/// unquoted) or several inside braces (`{a="b", c=~"d"}`).
///
/// # Errors
/// A message naming the matcher and what is wrong.
pub fn parse_matchers(specs: &[String]) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for s in specs {
        let t = s.trim();
        if let Some(inner) = t.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| format!("matcher {s:?}: missing closing '}}'"))?;
            let mut rest = inner.trim();
            while !rest.is_empty() {
                let (m, r) = parse_one(rest).map_err(|e| format!("matcher {s:?}: {e}"))?;
                out.push(m);
                rest = r.trim_start();
                rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            }
        } else {
            let (m, rest) = parse_one(t).map_err(|e| format!("matcher {s:?}: {e}"))?;
            if !rest.trim().is_empty() {
                return Err(format!(
                    "matcher {s:?}: unexpected {:?} after the value",
                    rest.trim()
                ));
            }
            out.push(m);
        }
    }
    Ok(out)
}

fn parse_one(s: &str) -> Result<(Matcher, &str), String> {
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("expected a label name".into());
    }
    let rest = s[name_end..].trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(format!(
            "expected one of = != =~ !~ after label name {name:?}"
        ));
    };
    let rest = rest.trim_start();
    let (value, rest) = if let Some(body) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                c => value.push(c),
            }
        }
        let end = end.ok_or("unterminated quoted value")?;
        (value, &body[end..])
    } else {
        let end = rest.find([',', '}', ' ']).unwrap_or(rest.len());
        (rest[..end].to_string(), &rest[end..])
    };
    let m = Matcher::new(name, op, &value).map_err(|e| e.to_string())?;
    Ok((m, rest))
}

/// Whether every matcher accepts `labels` (a missing label is `""`).
pub fn matches_all(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
}

/// Prints matchers the way Alertmanager prints a route's: `{a="b",c=~"d"}`.
pub fn matchers_string(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Regex => "=~",
                MatchOp::NotRegex => "!~",
            };
            format!("{}{op}{:?}", m.name, m.value)
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// How a route groups alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// `["..."]`: every label.
    All,
    /// These labels (an empty list: one group for the whole route).
    Labels(Vec<String>),
}

impl GroupBy {
    /// The group labels of an alert.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// Timers of a route, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
}

/// A node of the resolved routing tree.
#[derive(Clone, Debug)]
pub struct Route {
    /// Alertmanager's route key.
    pub key: String,
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub timers: Timers,
    pub continue_: bool,
    pub escalation: Option<String>,
    pub routes: Vec<Route>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Route {
    /// Resolves the tree from (validated) configuration.
    ///
    /// # Errors
    /// A bad matcher or a root without a receiver, naming it.
    pub fn build(root: &RouteConfig) -> Result<Route, String> {
        let defaults = Route {
            key: String::new(),
            receiver: root
                .receiver
                .clone()
                .ok_or("notify.route.receiver must be set")?,
            matchers: Vec::new(),
            group_by: GroupBy::Labels(Vec::new()),
            timers: Timers {
                group_wait_ms: 30_000,
                group_interval_ms: 300_000,
                repeat_interval_ms: 4 * 3_600_000,
            },
            continue_: false,
            escalation: None,
            routes: Vec::new(),
        };
        Self::build_node(root, &defaults, None)
    }

    fn build_node(
        c: &RouteConfig,
        parent: &Route,
        parent_key: Option<&str>,
    ) -> Result<Route, String> {
        let matchers = parse_matchers(&c.matchers)?;
        let key = match parent_key {
            None => matchers_string(&matchers),
            Some(p) => format!("{p}/{}", matchers_string(&matchers)),
        };
        let group_by = match &c.group_by {
            None => parent.group_by.clone(),
            Some(v) if v.iter().any(|s| s == "...") => GroupBy::All,
            Some(v) => GroupBy::Labels(v.clone()),
        };
        let t = parent.timers;
        let mut node = Route {
            receiver: c
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            timers: Timers {
                group_wait_ms: c.group_wait.map_or(t.group_wait_ms, ms),
                group_interval_ms: c.group_interval.map_or(t.group_interval_ms, ms),
                repeat_interval_ms: c.repeat_interval.map_or(t.repeat_interval_ms, ms),
            },
            continue_: c.continue_,
            escalation: c.escalation.clone().or_else(|| parent.escalation.clone()),
            routes: Vec::new(),
            matchers,
            key,
        };
        let mut children = Vec::with_capacity(c.routes.len());
        for child in &c.routes {
            children.push(Self::build_node(child, &node, Some(&node.key))?);
        }
        node.routes = children;
        Ok(node)
    }

    /// The routes that take an alert with `labels` (Alertmanager's `Match`).
    pub fn matching<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<&'a Route> {
        if !matches_all(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let m = child.matching(labels);
            let found = !m.is_empty();
            all.extend(m);
            if found && !child.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }
}

/// Alertmanager's `LabelSet.String()`: `{a="b", c="d"}`.
pub fn labels_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Prometheus's label-set fingerprint (FNV-1a 64 over name, 0xff, value,
/// 0xff in name order), as 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for (k, v) in labels {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
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

    fn cfg(text: &str) -> RouteConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn matchers_parse_prometheus_syntax_and_name_errors() {
        let m = parse_matchers(&[
            "severity=\"critical\"".into(),
            "{env=~\"prod|stage\", team!=\"x\"}".into(),
            "job!~db.*".into(),
        ])
        .unwrap();
        assert_eq!(m.len(), 4);
        assert!(matches_all(
            &m,
            &l(&[("severity", "critical"), ("env", "stage"), ("job", "api")])
        ));
        assert!(!matches_all(
            &m,
            &l(&[
                ("severity", "critical"),
                ("env", "production"),
                ("job", "api")
            ])
        ));
        assert!(!matches_all(
            &m,
            &l(&[("severity", "critical"), ("env", "prod"), ("job", "db1")])
        ));
        for bad in ["severity", "=\"x\"", "a=\"x", "a=~\"(\"", "a=\"b\" c"] {
            let e = parse_matchers(&[bad.to_string()]).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn routing_takes_first_match_unless_continue_and_inherits() {
        let root = Route::build(&cfg(r#"
receiver = "default"
group_by = ["alertname"]
group_wait = "10s"
[[routes]]
receiver = "pager"
matchers = ['severity="critical"']
continue = true
group_by = ["..."]
[[routes]]
receiver = "team-db"
matchers = ['job=~"db.*"']
repeat_interval = "1h"
[[routes]]
receiver = "never"
matchers = ['job="db1"']
"#))
        .unwrap();
        let names = |labels| {
            root.matching(&labels)
                .iter()
                .map(|r| r.receiver.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(l(&[("job", "api")])), ["default"]);
        assert_eq!(names(l(&[("job", "db1")])), ["team-db"]);
        assert_eq!(
            names(l(&[("job", "db1"), ("severity", "critical")])),
            ["pager", "team-db"]
        );
        let db = &root.routes[1];
        assert_eq!(db.key, "{}/{job=~\"db.*\"}");
        assert_eq!(db.timers.group_wait_ms, 10_000);
        assert_eq!(db.timers.repeat_interval_ms, 3_600_000);
        assert_eq!(db.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(root.routes[0].group_by, GroupBy::All);
    }

    #[test]
    fn fingerprint_is_prometheus_fnv() {
        // Empty label set: the FNV-1a offset basis, like model.LabelSet{}.Fingerprint().
        assert_eq!(fingerprint(&BTreeMap::new()), 0xcbf2_9ce4_8422_2325);
        assert_ne!(
            fingerprint(&l(&[("a", "b")])),
            fingerprint(&l(&[("a", "c")]))
        );
        assert_eq!(
            labels_string(&l(&[("b", "2"), ("a", "1")])),
            "{a=\"1\", b=\"2\"}"
        );
    }
}
