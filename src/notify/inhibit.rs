//! Inhibition (Alertmanager semantics): a firing alert matching a rule's
//! source matchers mutes every alert matching its target matchers whose
//! `equal` labels have the same values (absent equals absent). An alert
//! never inhibits itself.

use std::collections::BTreeMap;

use tidemark_storage::Matcher;

use crate::notify::config::InhibitRuleConfig;
use crate::notify::route::{matches_all, parse_matchers};

/// One resolved rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// # Errors
    /// A bad matcher, named.
    pub fn build(c: &InhibitRuleConfig) -> Result<Self, String> {
        Ok(Self {
            source: parse_matchers(&c.source_matchers)?,
            target: parse_matchers(&c.target_matchers)?,
            equal: c.equal.clone(),
        })
    }
}

/// Whether `target` (fingerprint `fp`) is muted by one of `rules` given
/// the currently firing alerts `(fingerprint, labels)`.
pub fn inhibited<'a>(
    rules: &[InhibitRule],
    fp: u64,
    target: &BTreeMap<String, String>,
    firing: impl Iterator<Item = (u64, &'a BTreeMap<String, String>)> + Clone,
) -> bool {
    rules.iter().any(|r| {
        matches_all(&r.target, target)
            && firing.clone().any(|(sfp, source)| {
                sfp != fp
                    && matches_all(&r.source, source)
                    && r.equal.iter().all(|l| source.get(l) == target.get(l))
            })
    })
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

    #[test]
    fn critical_mutes_warning_with_equal_labels_only() {
        let rule = InhibitRule::build(&InhibitRuleConfig {
            source_matchers: vec!["severity=\"critical\"".into()],
            target_matchers: vec!["severity=\"warning\"".into()],
            equal: vec!["component".into()],
        })
        .unwrap();
        let crit = l(&[("severity", "critical"), ("component", "db")]);
        let warn_db = l(&[("severity", "warning"), ("component", "db")]);
        let warn_api = l(&[("severity", "warning"), ("component", "api")]);
        let firing = [(1u64, &crit)];
        assert!(inhibited(
            std::slice::from_ref(&rule),
            2,
            &warn_db,
            firing.iter().copied()
        ));
        assert!(!inhibited(
            std::slice::from_ref(&rule),
            3,
            &warn_api,
            firing.iter().copied()
        ));
        assert!(!inhibited(
            std::slice::from_ref(&rule),
            2,
            &warn_db,
            std::iter::empty()
        ));
        // Source and target at once: does not mute itself.
        let both = InhibitRule::build(&InhibitRuleConfig {
            source_matchers: vec!["a=\"1\"".into()],
            target_matchers: vec!["a=\"1\"".into()],
            equal: vec![],
        })
        .unwrap();
        let x = l(&[("a", "1")]);
        assert!(!inhibited(&[both], 7, &x, [(7u64, &x)].into_iter()));
    }
}
