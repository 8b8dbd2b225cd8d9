//! Prometheus remote write 1.0: the protobuf messages (derived by hand with
//! prost; there is no protoc here) and decoding of a snappy-compressed
//! `WriteRequest` body with a decompressed-size limit.
//!
//! Invariants:
//! - The snappy header's declared length is checked against the limit
//!   before any buffer is allocated (a small body cannot claim gigabytes).
//! - A series is valid when it has a `__name__`, label names match
//!   `[a-zA-Z_][a-zA-Z0-9_]*` and appear once; an invalid series is
//!   rejected by itself, its neighbours are kept.

use tidemark_storage::Labels;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Prometheus `MetricType`: 0 unknown, 1 counter, 2 gauge, 3 histogram,
    /// 4 gaugehistogram, 5 summary, 6 info, 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

impl MetricMetadata {
    pub fn kind(&self) -> &'static str {
        match self.r#type {
            1 => "counter",
            2 => "gauge",
            3 => "histogram",
            4 => "gaugehistogram",
            5 => "summary",
            6 => "info",
            7 => "stateset",
            _ => "unknown",
        }
    }
}

/// Why a remote-write body was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid snappy body: {0}")]
    Snappy(#[from] snap::Error),
    #[error("snappy body decompresses to {declared} bytes, above the limit of {limit}")]
    TooLarge { declared: usize, limit: usize },
    #[error("invalid protobuf WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Decompresses (snappy block format) and decodes a `WriteRequest`.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<WriteRequest, DecodeError> {
    let declared = snap::raw::decompress_len(body)?;
    if declared > max_decompressed {
        return Err(DecodeError::TooLarge {
            declared,
            limit: max_decompressed,
        });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(prost::Message::decode(raw.as_slice())?)
}

/// Encodes and compresses a request (used by tests and the forwarder).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input below 4 GiB")
}

/// Checks a series' labels and builds its label set, or says what is wrong.
pub fn series_labels(labels: &[Label]) -> Result<Labels, String> {
    let mut seen: Vec<&str> = Vec::with_capacity(labels.len());
    for l in labels {
        if !valid_label_name(&l.name) {
            return Err(format!("invalid label name {:?}", l.name));
        }
        if seen.contains(&l.name.as_str()) {
            return Err(format!("duplicate label name {:?}", l.name));
        }
        seen.push(&l.name);
    }
    let set = Labels::from_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
    match set.metric_name() {
        Some(name) if valid_metric_name(name) => Ok(set),
        Some(name) => Err(format!("invalid metric name {name:?}")),
        None => Err("missing __name__ label".to_string()),
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// The cache key of a series as remote write spells it: its label pairs in
/// wire order, `\xff`-separated (never valid UTF-8, so unambiguous).
pub fn series_key(labels: &[Label], out: &mut Vec<u8>) {
    out.clear();
    for l in labels {
        out.extend_from_slice(l.name.as_bytes());
        out.push(0xff);
        out.extend_from_slice(l.value.as_bytes());
        out.push(0xff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn roundtrip_and_bomb_guard() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "x")],
                samples: vec![Sample {
                    value: 1.5,
                    timestamp: 1000,
                }],
            }],
            metadata: vec![],
        };
        let body = encode(&req);
        assert_eq!(decode(&body, 1 << 20).unwrap(), req);
        let e = decode(&body, 4).unwrap_err().to_string();
        assert!(e.contains("above the limit of 4"), "{e}");
        assert!(decode(b"\xff\xff\xff\xff\x0fgarbage", 1 << 20).is_err());
    }

    #[test]
    fn label_validation_names_the_problem() {
        assert!(series_labels(&[label("__name__", "up"), label("job", "x")]).is_ok());
        let e = series_labels(&[label("job", "x")]).unwrap_err();
        assert!(e.contains("__name__"), "{e}");
        let e = series_labels(&[label("__name__", "up"), label("1bad", "x")]).unwrap_err();
        assert!(e.contains("\"1bad\""), "{e}");
        let e = series_labels(&[label("__name__", "up"), label("a", "1"), label("a", "2")])
            .unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        let e = series_labels(&[label("__name__", "bad-name")]).unwrap_err();
        assert!(e.contains("metric name"), "{e}");
    }
}
