//! The series value notation of Prometheus's promqltest scripts and
//! promtool rule test files: `1 2 _ stale`, `0+10x5` (start, then five
//! steps of +10: six values), `1x3` (four ones), `_x2` (two missing).
//!
//! Used by the golden script runner (`tests/promql.rs`) and by
//! `tidemark rules test`. Invariant: expansion never guesses: a token that
//! is neither a number, `_`, `stale`, ±Inf/NaN nor a well-formed
//! `start(+|-)deltaxN` is an error naming the token.

use crate::value::stale_nan;

/// A token of the notation that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad series value {token:?}: {reason}")]
pub struct NotationError {
    /// The token as written.
    pub token: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One value: a number, `Inf`/`-Inf`/`NaN`, or `stale` (the stale marker).
///
/// # Errors
/// [`NotationError`] when `s` is none of those.
pub fn parse_value(s: &str) -> Result<f64, NotationError> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        "stale" => Ok(stale_nan()),
        _ => s.parse::<f64>().map_err(|_| NotationError {
            token: s.to_string(),
            reason: "not a number",
        }),
    }
}

/// Expands whitespace-separated notation into one value per interval
/// (`None` = no sample at that step).
///
/// # Errors
/// [`NotationError`] naming the first bad token.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, NotationError> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        let Some(xpos) = tok
            .rfind('x')
            .filter(|&p| p > 0 && tok[p + 1..].chars().all(|c| c.is_ascii_digit()))
        else {
            out.push(Some(parse_value(tok)?));
            continue;
        };
        let times: usize = tok[xpos + 1..].parse().map_err(|_| NotationError {
            token: tok.to_string(),
            reason: "bad repeat count",
        })?;
        let head = &tok[..xpos];
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times));
            continue;
        }
        // Split `start(+|-)delta`, skipping a leading sign and exponent signs.
        let b = head.as_bytes();
        let split = (1..b.len())
            .find(|&i| (b[i] == b'+' || b[i] == b'-') && b[i - 1] != b'e' && b[i - 1] != b'E');
        let (start, delta) = match split {
            Some(i) => (parse_value(&head[..i])?, parse_value(&head[i..])?),
            None => (parse_value(head)?, 0.0),
        };
        for k in 0..=times {
            out.push(Some(start + delta * k as f64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::is_stale_nan;

    #[test]
    fn expands_every_form() {
        let v = expand_values("1 _ 0+10x2 1x1 _x2 -2-1x1 1e3 stale").unwrap();
        let want = [
            Some(1.0),
            None,
            Some(0.0),
            Some(10.0),
            Some(20.0),
            Some(1.0),
            Some(1.0),
            None,
            None,
            Some(-2.0),
            Some(-3.0),
            Some(1000.0),
        ];
        assert_eq!(&v[..want.len()], &want);
        assert!(is_stale_nan(v[want.len()].unwrap()));
        assert_eq!(v.len(), want.len() + 1);
    }

    #[test]
    fn bad_tokens_are_named() {
        let e = expand_values("1 2 three").unwrap_err();
        assert_eq!(e.token, "three");
        let e = expand_values("1+ax3").unwrap_err();
        assert_eq!(e.token, "+a");
    }
}
