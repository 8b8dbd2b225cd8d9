//! [`SeriesFilter`]: a target's `match` selectors (Prometheus syntax, e.g.
//! `{job="api"}`, `up`, `http_requests_total{code=~"5.."}`).
//!
//! Invariants: a series passes when it matches every matcher of at least
//! one selector (Prometheus `match[]` semantics, a missing label equals
//! `""`); no selectors means every series passes.

use tidemark_query::LabelMatcher;
use tidemark_storage::Labels;

/// Parsed selectors of one target.
#[derive(Clone, Debug, Default)]
pub struct SeriesFilter {
    selectors: Vec<Vec<LabelMatcher>>,
}

impl SeriesFilter {
    /// Parses selectors; the error names the one that is wrong.
    pub fn parse(selectors: &[String]) -> Result<Self, String> {
        let selectors = selectors
            .iter()
            .map(|s| match tidemark_query::parse(s) {
                Ok(tidemark_query::ast::Expr::VectorSelector(sel)) => Ok(sel.matchers),
                Ok(_) => Err(format!("{s:?} is not a series selector")),
                Err(e) => Err(format!("invalid selector {s:?}: {e}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { selectors })
    }

    /// True when there are no selectors (every series passes).
    pub fn is_all(&self) -> bool {
        self.selectors.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.is_all()
            || self.selectors.iter().any(|sel| {
                sel.iter()
                    .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_ored_and_matchers_anded() {
        let f = SeriesFilter::parse(&[r#"{job="api",code=~"5.."}"#.to_string(), "up".to_string()])
            .unwrap();
        let l = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
        assert!(f.matches(&l(&[("__name__", "x"), ("job", "api"), ("code", "503")])));
        assert!(!f.matches(&l(&[("__name__", "x"), ("job", "api"), ("code", "200")])));
        assert!(!f.matches(&l(&[("__name__", "x"), ("job", "db"), ("code", "503")])));
        assert!(f.matches(&l(&[("__name__", "up"), ("job", "db")])));
        assert!(
            SeriesFilter::parse(&[])
                .unwrap()
                .matches(&l(&[("__name__", "a")]))
        );
    }

    #[test]
    fn errors_name_the_selector() {
        let e = SeriesFilter::parse(&["{job=}".to_string()]).unwrap_err();
        assert!(e.contains("{job=}"), "{e}");
        let e = SeriesFilter::parse(&["rate(x[1m])".to_string()]).unwrap_err();
        assert!(e.contains("not a series selector"), "{e}");
    }
}
