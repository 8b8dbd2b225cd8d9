//! Property tests for the parser: it never panics, errors point inside the
//! input, and valid expressions built from PromQL fragments keep parsing
//! when wrapped in parentheses.

use proptest::prelude::*;
use tidemark_query::parse;

const FRAGMENTS: &[&str] = &[
    "rate(",
    "sum",
    " by ",
    "(",
    ")",
    "[5m]",
    "{",
    "}",
    "a=\"b\"",
    ",",
    " + ",
    " - ",
    "*",
    "/",
    "^",
    " and ",
    " or ",
    " unless ",
    " on(",
    " ignoring(",
    " group_left",
    " bool ",
    ">",
    "==",
    "foo",
    "bar_total",
    "1",
    "0x1f",
    "1e3",
    "Inf",
    " offset 1m",
    "'x'",
    "\"",
    "`",
    "-",
    "histogram_quantile(0.9, ",
    "topk(3, ",
    "le",
    "\n",
    "#c\n",
    "@",
    ":",
    "=~",
    "!~",
    "!=",
    "[",
    "]",
    "5m",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_fragments(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..16)) {
        let s: String = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        match parse(&s) {
            Ok(e) => {
                // A valid expression stays valid in parentheses.
                let wrapped = format!("({s})");
                prop_assert!(parse(&wrapped).is_ok(), "{s:?} parsed as {e:?} but ({s}) did not");
            }
            Err(err) => {
                prop_assert!(err.pos <= s.len());
                prop_assert!(err.line >= 1 && err.col >= 1);
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,40}") {
        if let Err(err) = parse(&s) {
            prop_assert!(err.pos <= s.len());
        }
    }
}
