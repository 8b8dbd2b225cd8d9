//! OpenMetrics / Prometheus text exposition parser.
//!
//! ```text
//! # TYPE http_requests counter
//! # HELP http_requests Requests served.
//! # UNIT http_latency seconds
//! http_requests_total{host="a",job="api"} 1027 1699920000.000
//! # EOF
//! ```
//!
//! Owns: tokenizing sample lines (`name{label="value",...} value [timestamp]
//! [# exemplar]`), converting timestamps to milliseconds, and collecting the
//! `# TYPE` / `# HELP` / `# UNIT` metadata of every family seen.
//!
//! Invariants:
//! - Timestamps are read in the unit the caller chose ([`TimestampUnit`]):
//!   OpenMetrics writes seconds with a fraction, Prometheus text integer
//!   milliseconds. Seconds are converted decimally (no float rounding) to
//!   whole milliseconds, digits past the millisecond truncated.
//! - Label values keep their escapes (`\\` `\"` `\n`) in the [`Text`] views
//!   and are unescaped lazily.
//! - A malformed line produces one [`LineError`] and yields nothing; lines
//!   after `# EOF` are errors. Exemplars are validated only as far as
//!   finding them, then ignored.
//! - Parsing allocates nothing per sample line in the steady state; metadata
//!   lines (one per family) allocate.

use std::collections::BTreeMap;

use super::{
    DEFAULT_MAX_ERRORS, Escaping, LineError, LineErrorKind, ParseSummary, Span, Text,
    for_each_line, quote,
};

/// Unit of the optional timestamp after a sample value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampUnit {
    /// OpenMetrics: seconds since the epoch, fraction allowed (`1699920000.123`).
    #[default]
    Seconds,
    /// Prometheus text format 0.0.4: integer milliseconds.
    Milliseconds,
}

/// What `# TYPE`, `# HELP` and `# UNIT` said about one metric family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, ...; empty when no TYPE line was seen.
    pub kind: String,
    /// HELP text, unescaped.
    pub help: String,
    pub unit: String,
}

/// The metric types a `# TYPE` line may name (OpenMetrics 1.0 plus
/// Prometheus's `untyped`).
const METRIC_TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "stateset",
    "info",
    "summary",
    "unknown",
    "untyped",
];

/// One sample line, borrowed from the body and the parser; valid only inside
/// the sink call.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// 1-based line number.
    pub line: u64,
    pub value: f64,
    /// Milliseconds since the epoch; `None` when the line has no timestamp.
    pub timestamp_ms: Option<i64>,
    text: &'a str,
    name_end: u32,
    series_key_end: u32,
    labels: &'a [(Span, Span)],
}

impl<'a> Sample<'a> {
    /// The metric name (never escaped).
    pub fn name(&self) -> &'a str {
        &self.text[..self.name_end as usize]
    }

    /// The raw `name{labels}` text: equal keys denote the same series, so
    /// callers can cache on it.
    pub fn series_key(&self) -> &'a str {
        &self.text[..self.series_key_end as usize]
    }

    /// Labels in input order; names are never escaped.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&'a str, Text<'a>)> + 'a {
        let text = self.text;
        self.labels.iter().map(move |(k, v)| {
            (
                &text[k.start as usize..k.end as usize],
                v.text(text, Escaping::OpenMetrics),
            )
        })
    }
}

/// A reusable OpenMetrics parser. Keep one per input: it remembers whether
/// `# EOF` was seen and accumulates the families' metadata across calls.
#[derive(Debug, Default)]
pub struct OpenMetricsParser {
    unit: TimestampUnit,
    max_errors: usize,
    labels: Vec<(Span, Span)>,
    eof: bool,
    metadata: BTreeMap<String, MetricMetadata>,
}

impl OpenMetricsParser {
    pub fn new(unit: TimestampUnit) -> Self {
        Self {
            unit,
            max_errors: DEFAULT_MAX_ERRORS,
            ..Default::default()
        }
    }

    /// How many errors a summary keeps verbatim (the rest are counted).
    pub fn with_max_errors(mut self, max_errors: usize) -> Self {
        self.max_errors = max_errors;
        self
    }

    /// Metadata per family name collected so far.
    pub fn metadata(&self) -> &BTreeMap<String, MetricMetadata> {
        &self.metadata
    }

    /// Whether a `# EOF` line has been seen.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Parses every line of `body`, numbering them from `first_line`, and
    /// calls `sink` once per valid sample line.
    pub fn parse(
        &mut self,
        body: &[u8],
        first_line: u64,
        mut sink: impl FnMut(&Sample<'_>),
    ) -> ParseSummary {
        let mut summary = ParseSummary::default();
        let max_errors = self.max_errors;
        summary.lines_seen = for_each_line(body, first_line, |line_no, line| {
            let result = line.and_then(|text| self.parse_line(text).map(|parsed| (text, parsed)));
            match result {
                Ok((_, Parsed::Skip)) => {}
                Ok((_, Parsed::Metadata)) => summary.lines_accepted += 1,
                Ok((text, Parsed::Sample(s))) => {
                    summary.lines_accepted += 1;
                    summary.samples += 1;
                    sink(&Sample {
                        line: line_no,
                        value: s.value,
                        timestamp_ms: s.timestamp_ms,
                        text,
                        name_end: s.name_end,
                        series_key_end: s.series_key_end,
                        labels: &self.labels,
                    });
                }
                Err(kind) => summary.reject(
                    LineError {
                        line: line_no,
                        kind,
                    },
                    max_errors,
                ),
            }
        });
        summary
    }

    fn parse_line(&mut self, text: &str) -> Result<Parsed, LineErrorKind> {
        self.labels.clear();
        let trimmed = text.trim_start_matches([' ', '\t']);
        if trimmed.trim_end().is_empty() {
            return Ok(Parsed::Skip);
        }
        if self.eof {
            return Err(LineErrorKind::AfterEof);
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            return self.parse_comment(comment);
        }
        // Leading whitespace is tolerated; spans are relative to `text`.
        let offset = text.len() - trimmed.len();
        let b = text.as_bytes();
        let n = b.len();

        let mut i = offset;
        if i < n && (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b':') {
            i += 1;
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
        }
        if i == offset {
            return Err(if b[i] == b'{' {
                LineErrorKind::MissingMetricName
            } else {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b' ' || c == b'{')
                    .map_or(n, |p| i + p);
                LineErrorKind::InvalidMetricName(quote(&text[offset..end]))
            });
        }
        let name_end = i;
        if i < n && b[i] == b'{' {
            i = self.parse_labels(text, i + 1)?;
        }
        let series_key_end = i;
        if i < n && b[i] != b' ' && b[i] != b'\t' {
            let end = b[offset..]
                .iter()
                .position(|&c| c == b' ')
                .map_or(n, |p| offset + p);
            return Err(LineErrorKind::InvalidMetricName(quote(&text[offset..end])));
        }

        // value [timestamp] [# exemplar]
        let mut tokens = text[i..].split_ascii_whitespace();
        let raw_value = tokens.next().ok_or(LineErrorKind::MissingValue)?;
        let value = parse_value(raw_value)?;
        let mut timestamp_ms = None;
        if let Some(raw) = tokens.next().filter(|t| *t != "#") {
            let ts = match self.unit {
                TimestampUnit::Seconds => seconds_to_millis(raw),
                TimestampUnit::Milliseconds => raw.parse::<i64>().ok(),
            };
            timestamp_ms = Some(ts.ok_or_else(|| LineErrorKind::InvalidTimestamp(quote(raw)))?);
            if let Some(extra) = tokens.next().filter(|t| *t != "#") {
                // `extra` is a subslice of `text`: quote from it to the end.
                let at = extra.as_ptr() as usize - text.as_ptr() as usize;
                return Err(LineErrorKind::TrailingText(quote(&text[at..])));
            }
        }
        Ok(Parsed::Sample(ParsedSample {
            value,
            timestamp_ms,
            name_end: name_end as u32,
            series_key_end: series_key_end as u32,
        }))
    }

    /// Parses `label="value",...}` starting just after `{`; returns the index
    /// after the closing brace.
    fn parse_labels(&mut self, text: &str, mut i: usize) -> Result<usize, LineErrorKind> {
        let b = text.as_bytes();
        let n = b.len();
        let bad = |why: &str| LineErrorKind::InvalidLabels(why.to_string());
        loop {
            i = skip_spaces(b, i);
            if i == n {
                return Err(bad("missing closing '}'"));
            }
            if b[i] == b'}' {
                return Ok(i + 1);
            }
            let kstart = i;
            if b[i].is_ascii_alphabetic() || b[i] == b'_' {
                i += 1;
                while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            if i == kstart {
                return Err(LineErrorKind::InvalidLabels(format!(
                    "invalid label name at {:?}",
                    quote(&text[kstart..])
                )));
            }
            let kend = i;
            i = skip_spaces(b, i);
            if i == n || b[i] != b'=' {
                return Err(LineErrorKind::InvalidLabels(format!(
                    "expected '=' after label {:?}",
                    &text[kstart..kend]
                )));
            }
            i = skip_spaces(b, i + 1);
            if i == n || b[i] != b'"' {
                return Err(LineErrorKind::InvalidLabels(format!(
                    "expected '\"' to open the value of label {:?}",
                    &text[kstart..kend]
                )));
            }
            let vstart = i + 1;
            let mut j = vstart;
            let mut escaped = false;
            loop {
                match b.get(j) {
                    None => {
                        return Err(LineErrorKind::InvalidLabels(format!(
                            "unterminated value of label {:?}",
                            &text[kstart..kend]
                        )));
                    }
                    Some(b'\\') => {
                        escaped = true;
                        j += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            self.labels.push((
                Span::new(kstart, kend, false),
                Span::new(vstart, j, escaped),
            ));
            i = skip_spaces(b, j + 1);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(i + 1),
                _ => return Err(bad("expected ',' or '}' after a label value")),
            }
        }
    }

    /// A `#` line: metadata, `EOF`, or a plain comment.
    fn parse_comment(&mut self, comment: &str) -> Result<Parsed, LineErrorKind> {
        let comment = comment.strip_prefix(' ').unwrap_or(comment);
        let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
        let kind = match keyword.trim_end() {
            "EOF" => {
                if !rest.trim().is_empty() {
                    return Err(LineErrorKind::TrailingText(quote(rest)));
                }
                self.eof = true;
                return Ok(Parsed::Metadata);
            }
            "TYPE" => "TYPE",
            "HELP" => "HELP",
            "UNIT" => "UNIT",
            _ => return Ok(Parsed::Skip),
        };
        let bad = |reason: &str| LineErrorKind::InvalidMetadata {
            kind,
            reason: reason.to_string(),
        };
        let rest = rest.trim_start_matches(' ');
        let (family, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        if family.is_empty() {
            return Err(bad("missing metric name"));
        }
        if !is_metric_name(family) {
            return Err(bad(&format!("invalid metric name {:?}", quote(family))));
        }
        fn entry<'m>(
            map: &'m mut BTreeMap<String, MetricMetadata>,
            family: &str,
        ) -> &'m mut MetricMetadata {
            map.entry(family.to_string()).or_default()
        }
        match kind {
            "TYPE" => {
                let t = arg.trim();
                if t.is_empty() {
                    return Err(bad("missing type"));
                }
                if !METRIC_TYPES.contains(&t) {
                    return Err(LineErrorKind::UnknownMetricType(quote(t)));
                }
                entry(&mut self.metadata, family).kind = t.to_string();
            }
            "HELP" => {
                let help = Text::new(arg, arg.contains('\\'), Escaping::OpenMetrics);
                let e = entry(&mut self.metadata, family);
                e.help.clear();
                help.unescape_into(&mut e.help);
            }
            _ => entry(&mut self.metadata, family).unit = arg.trim().to_string(),
        }
        Ok(Parsed::Metadata)
    }
}

enum Parsed {
    Skip,
    Metadata,
    Sample(ParsedSample),
}

struct ParsedSample {
    value: f64,
    timestamp_ms: Option<i64>,
    name_end: u32,
    series_key_end: u32,
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// A sample value: a float, `+Inf`/`-Inf`/`NaN` in any case.
fn parse_value(raw: &str) -> Result<f64, LineErrorKind> {
    raw.parse::<f64>()
        .map_err(|_| LineErrorKind::InvalidValue(quote(raw)))
}

/// Seconds with an optional decimal fraction (or, rarely, an exponent) to
/// whole milliseconds, truncating digits past the millisecond.
fn seconds_to_millis(raw: &str) -> Option<i64> {
    let (neg, digits) = match raw.as_bytes().first()? {
        b'-' => (true, &raw[1..]),
        b'+' => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.contains(['e', 'E']) {
        let v = raw.parse::<f64>().ok()? * 1000.0;
        // 2^63 ms; `as` saturates, so check the range explicitly.
        return (v.is_finite() && v.abs() < 9.2e18).then_some(v.trunc() as i64);
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ms: i64 = 0;
    for k in 0..3 {
        ms = ms * 10 + frac.as_bytes().get(k).map_or(0, |c| i64::from(c - b'0'));
    }
    let total = secs.checked_mul(1000)?.checked_add(ms)?;
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Owned {
        line: u64,
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
        ts: Option<i64>,
    }

    fn collect(p: &mut OpenMetricsParser, body: &str) -> (Vec<Owned>, ParseSummary) {
        let mut out = Vec::new();
        let s = p.parse(body.as_bytes(), 1, |s| {
            out.push(Owned {
                line: s.line,
                name: s.name().to_string(),
                labels: s
                    .labels()
                    .map(|(k, v)| (k.to_string(), v.unescape().into_owned()))
                    .collect(),
                value: s.value,
                ts: s.timestamp_ms,
            })
        });
        (out, s)
    }

    fn parse(body: &str) -> (Vec<Owned>, ParseSummary) {
        collect(&mut OpenMetricsParser::new(TimestampUnit::Seconds), body)
    }

    fn one_error(line: &str) -> LineErrorKind {
        let (pts, s) = parse(line);
        assert!(pts.is_empty(), "{line:?} parsed: {pts:?}");
        assert_eq!(s.rejected_lines, 1, "{line:?}");
        assert_eq!(s.errors[0].line, 1);
        s.errors[0].kind.clone()
    }

    #[test]
    fn parses_dataset_excerpt_with_metadata() {
        let body = "# TYPE http_requests counter\n\
# HELP http_requests Requests \\\\ served.\\nSecond line\n\
# UNIT http_latency_p99_seconds seconds\n\
http_requests_total{host=\"host-01\",instance=\"host-01:8080\",job=\"api\",service=\"api\"} 1027 1699920000.000\n\
http_requests_total{host=\"host-01\",instance=\"host-01:8080\",job=\"api\",service=\"api\"} 1100 1699920010.010\n\
# EOF\n";
        let mut p = OpenMetricsParser::new(TimestampUnit::Seconds);
        let (pts, s) = collect(&mut p, body);
        assert_eq!(s.rejected_lines, 0, "{:?}", s.errors);
        assert_eq!((s.samples, s.lines_accepted, s.lines_seen), (2, 6, 6));
        assert_eq!(pts[0].name, "http_requests_total");
        assert_eq!(pts[0].labels[1], ("instance".into(), "host-01:8080".into()));
        assert_eq!(pts[0].ts, Some(1699920000000));
        assert_eq!((pts[1].value, pts[1].ts), (1100.0, Some(1699920010010)));
        let m = &p.metadata()["http_requests"];
        assert_eq!(m.kind, "counter");
        assert_eq!(m.help, "Requests \\ served.\nSecond line");
        assert_eq!(p.metadata()["http_latency_p99_seconds"].unit, "seconds");
        assert!(p.saw_eof());
    }

    #[test]
    fn label_value_escapes_and_series_key() {
        let mut p = OpenMetricsParser::new(TimestampUnit::Seconds);
        let mut keys = Vec::new();
        let (pts, s) = collect(&mut p, r#"m{a="x\"y\\z\nw",b="}, ",} 1"#);
        assert_eq!(s.rejected_lines, 0, "{:?}", s.errors);
        assert_eq!(
            pts[0].labels,
            vec![
                ("a".into(), "x\"y\\z\nw".into()),
                ("b".into(), "}, ".into())
            ]
        );
        p.parse(b"up 1\nup{job=\"a\"} 2 # {trace_id=\"x\"} 1", 1, |s| {
            keys.push(s.series_key().to_string())
        });
        assert_eq!(keys, vec!["up", "up{job=\"a\"}"]);
    }

    #[test]
    fn values_and_timestamps() {
        let (pts, s) = parse("a +Inf\nb -Inf 1.5\nc NaN -2\nd 1e3 .25\ne 2 17 # {x=\"y\"} 1 2\n");
        assert_eq!(s.rejected_lines, 0, "{:?}", s.errors);
        assert_eq!(pts[0].value, f64::INFINITY);
        assert_eq!((pts[1].value, pts[1].ts), (f64::NEG_INFINITY, Some(1500)));
        assert!(pts[2].value.is_nan());
        assert_eq!(pts[2].ts, Some(-2000));
        assert_eq!((pts[3].value, pts[3].ts), (1000.0, Some(250)));
        assert_eq!(pts[4].ts, Some(17000));

        let mut prom = OpenMetricsParser::new(TimestampUnit::Milliseconds);
        let (pts, s) = collect(&mut prom, "a 1 1699920000123\nb 1 1.5\n");
        assert_eq!(pts[0].ts, Some(1699920000123));
        assert_eq!(
            s.errors[0].kind,
            LineErrorKind::InvalidTimestamp("1.5".into())
        );
    }

    #[test]
    fn seconds_conversion_is_decimal() {
        assert_eq!(seconds_to_millis("1699920000.001"), Some(1699920000001));
        assert_eq!(seconds_to_millis("0.1"), Some(100));
        assert_eq!(seconds_to_millis("1.23456"), Some(1234));
        assert_eq!(seconds_to_millis("1.6e9"), Some(1_600_000_000_000));
        assert_eq!(seconds_to_millis("-0.5"), Some(-500));
        assert_eq!(seconds_to_millis("."), None);
        assert_eq!(seconds_to_millis("1.2.3"), None);
        assert_eq!(seconds_to_millis("99999999999999999"), None);
    }

    #[test]
    fn every_error_kind_names_its_line() {
        use LineErrorKind::*;
        assert_eq!(one_error("{a=\"b\"} 1"), MissingMetricName);
        assert_eq!(one_error("9up 1"), InvalidMetricName("9up".into()));
        assert_eq!(one_error("up-x 1"), InvalidMetricName("up-x".into()));
        assert_eq!(one_error("up"), MissingValue);
        assert_eq!(one_error("up{} "), MissingValue);
        assert_eq!(one_error("up one"), InvalidValue("one".into()));
        assert_eq!(one_error("up 1 soon"), InvalidTimestamp("soon".into()));
        assert_eq!(one_error("up 1 2 3"), TrailingText("3".into()));
        assert!(matches!(one_error("up{a=\"b\" 1"), InvalidLabels(_)));
        assert!(matches!(one_error("up{a=b} 1"), InvalidLabels(_)));
        assert!(matches!(one_error("up{a\"b\"} 1"), InvalidLabels(_)));
        assert!(matches!(one_error("up{9=\"b\"} 1"), InvalidLabels(_)));
        assert!(matches!(one_error("up{a=\"b} 1"), InvalidLabels(_)));
        assert!(matches!(one_error("up{a=\"b"), InvalidLabels(_)));
        assert_eq!(
            one_error("# TYPE up"),
            InvalidMetadata {
                kind: "TYPE",
                reason: "missing type".into()
            }
        );
        assert_eq!(
            one_error("# TYPE up guage"),
            UnknownMetricType("guage".into())
        );
        assert!(matches!(
            one_error("# HELP"),
            InvalidMetadata { kind: "HELP", .. }
        ));
        assert!(matches!(
            one_error("# UNIT 1x s"),
            InvalidMetadata { kind: "UNIT", .. }
        ));
        assert_eq!(one_error("# EOF junk"), TrailingText("junk".into()));
        let (_, s) = parse("# EOF\nup 1\n\n");
        assert_eq!(s.errors[0].to_string(), "line 2: data after # EOF");
        let mut p = OpenMetricsParser::new(TimestampUnit::Seconds);
        let s = p.parse(b"up 1\n\xffup 1\n", 1, |_| {});
        assert_eq!(
            (s.errors[0].line, &s.errors[0].kind),
            (2, &LineErrorKind::InvalidUtf8)
        );
    }

    #[test]
    fn bad_line_between_good_lines_keeps_both() {
        let (pts, s) = parse("a{x=\"1\"} 1 1\nb{x=\"1} 2 2\nc 3 3\n");
        assert_eq!(pts.len(), 2);
        assert_eq!((pts[0].name.as_str(), pts[0].line), ("a", 1));
        assert_eq!(
            (pts[1].name.as_str(), pts[1].line, pts[1].value),
            ("c", 3, 3.0)
        );
        assert_eq!((s.samples, s.rejected_lines, s.errors[0].line), (2, 1, 2));
    }

    #[test]
    fn plain_comments_and_blank_lines_are_skipped() {
        let (pts, s) = parse("# just a note\n\n  up 1\n");
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].line, 3);
        assert_eq!((s.lines_accepted, s.rejected_lines), (1, 0));
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn round_trip(
            lines in proptest::collection::vec((
                "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}",
                proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,6}", "[a-z \"\\\\\n,{}=#]{0,8}"), 0..4),
                any::<f64>().prop_filter("not NaN", |v| !v.is_nan()),
                proptest::option::of(-10_000_000_000_000i64..10_000_000_000_000),
            ), 1..8)
        ) {
            let mut body = String::new();
            for (name, labels, value, ts) in &lines {
                body.push_str(name);
                if !labels.is_empty() {
                    let ls: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                    body.push_str(&format!("{{{}}}", ls.join(",")));
                }
                body.push_str(&format!(" {value:?}"));
                if let Some(ms) = ts {
                    let sign = if *ms < 0 { "-" } else { "" };
                    body.push_str(&format!(" {sign}{}.{:03}", ms.abs() / 1000, ms.abs() % 1000));
                }
                body.push('\n');
            }
            body.push_str("# EOF\n");
            let (pts, s) = parse(&body);
            prop_assert_eq!(s.rejected_lines, 0, "{:?}\n{}", s.errors, body);
            let expected: Vec<Owned> = lines
                .iter()
                .enumerate()
                .map(|(i, (name, labels, value, ts))| Owned {
                    line: i as u64 + 1,
                    name: name.clone(),
                    labels: labels.clone(),
                    value: *value,
                    ts: *ts,
                })
                .collect();
            prop_assert_eq!(pts, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut p = OpenMetricsParser::new(TimestampUnit::Seconds);
            let s = p.parse(&body, 1, |_| {});
            prop_assert!(s.lines_accepted + s.rejected_lines <= s.lines_seen);
        }
    }
}
