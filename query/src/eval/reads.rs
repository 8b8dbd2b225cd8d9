//! What an evaluation will read, before it runs: every selector of an
//! expression with the time range [`super::Evaluator`] will ask the source
//! for, so a caller evaluating many expressions at one time (a rule group)
//! can fetch their series in one batch.
//!
//! Invariant: the windows come from the same functions the evaluator uses
//! ([`instant_window`], [`range_window`]), so a prefetch built from
//! [`instant_reads`] covers exactly what [`super::eval_instant`] selects.
//! A source answering from such a prefetch must still fall back to its
//! backing store for any request it does not cover.

use crate::ast::{Expr, VectorSelector};
use crate::labels::LabelMatcher;

use super::EvalOptions;

/// One selection an evaluation will make: the selector's matchers and the
/// inclusive time range, ms.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorRead<'a> {
    /// The selector's matchers.
    pub matchers: &'a [LabelMatcher],
    /// First and last timestamp read (both inclusive).
    pub mint: i64,
    #[allow(missing_docs)]
    pub maxt: i64,
}

/// The range an instant selector reads for steps `start..=end`: the
/// lookback window before the first step through the last step.
pub(crate) fn instant_window(
    start: i64,
    end: i64,
    vs: &VectorSelector,
    opts: &EvalOptions,
) -> (i64, i64) {
    let off = vs.offset_ms;
    let lb = opts.lookback.as_millis() as i64;
    (start - off - lb, end - off)
}

/// The range a range selector `[range_ms]` reads for steps `start..=end`.
pub(crate) fn range_window(start: i64, end: i64, vs: &VectorSelector, range_ms: i64) -> (i64, i64) {
    let off = vs.offset_ms;
    (start - off - range_ms, end - off)
}

/// Every selection [`super::eval_instant`] makes for `expr` at `t_ms`, in
/// the order of the expression's text (one per selector, repeats kept).
pub fn instant_reads<'a>(expr: &'a Expr, t_ms: i64, opts: &EvalOptions) -> Vec<SelectorRead<'a>> {
    let mut out = Vec::new();
    collect(expr, t_ms, opts, &mut out);
    out
}

fn collect<'a>(e: &'a Expr, t: i64, opts: &EvalOptions, out: &mut Vec<SelectorRead<'a>>) {
    let (vs, (mint, maxt)) = match e {
        Expr::Number(_) | Expr::String(_) => return,
        Expr::VectorSelector(vs) => (vs, instant_window(t, t, vs, opts)),
        Expr::MatrixSelector { selector, range_ms } => {
            (selector, range_window(t, t, selector, *range_ms))
        }
        Expr::Call { args, .. } => {
            for a in args {
                collect(a, t, opts, out);
            }
            return;
        }
        Expr::Aggregate { expr, param, .. } => {
            if let Some(p) = param {
                collect(p, t, opts, out);
            }
            collect(expr, t, opts, out);
            return;
        }
        Expr::Binary { lhs, rhs, .. } => {
            collect(lhs, t, opts, out);
            collect(rhs, t, opts, out);
            return;
        }
        Expr::Neg(e) | Expr::Paren(e) => {
            collect(e, t, opts, out);
            return;
        }
    };
    out.push(SelectorRead {
        matchers: &vs.matchers,
        mint,
        maxt,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SeriesData, SeriesSource};
    use crate::{Labels, MemorySource, SourceError, eval_instant, parse};
    use std::sync::Mutex;

    /// Records every `select` the evaluator makes.
    struct Recording {
        inner: MemorySource,
        calls: Mutex<Vec<(String, i64, i64)>>,
    }

    impl SeriesSource for Recording {
        fn select(
            &self,
            matchers: &[LabelMatcher],
            start_ms: i64,
            end_ms: i64,
        ) -> Result<Vec<SeriesData>, SourceError> {
            self.calls
                .lock()
                .unwrap()
                .push((format!("{matchers:?}"), start_ms, end_ms));
            self.inner.select(matchers, start_ms, end_ms)
        }
    }

    #[test]
    fn reads_are_exactly_what_the_evaluator_selects() {
        let mut inner = MemorySource::new();
        for name in ["a", "b", "c"] {
            inner.add(
                Labels::from_pairs([("__name__", name), ("job", "x")]),
                (0..100).map(|i| (i * 15_000, i as f64)),
            );
        }
        let src = Recording {
            inner,
            calls: Mutex::new(Vec::new()),
        };
        let opts = EvalOptions::default();
        let t = 1_200_000;
        for q in [
            "a",
            "a offset 1m",
            "rate(a[5m])",
            "sum by (job) (rate(a[5m] offset 2m)) / ignoring(x) group_left b",
            "-(max_over_time(b{job=~\"x|y\"}[10m]) > 3)",
            "topk(scalar(c), a) and on(job) c",
            "timestamp(c) - time()",
            "a[3m]",
            "label_replace(a, \"d\", \"$1\", \"job\", \"(.*)\")",
            "1 + 2",
        ] {
            let expr = parse(q).unwrap();
            src.calls.lock().unwrap().clear();
            eval_instant(&src, &expr, t, &opts).unwrap();
            let mut made = src.calls.lock().unwrap().clone();
            let mut planned: Vec<_> = instant_reads(&expr, t, &opts)
                .into_iter()
                .map(|r| (format!("{:?}", r.matchers), r.mint, r.maxt))
                .collect();
            made.sort();
            planned.sort();
            assert_eq!(made, planned, "{q}");
        }
    }
}
