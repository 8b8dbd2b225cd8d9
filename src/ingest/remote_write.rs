//! Prometheus remote write 1.0: the protobuf messages (derived by hand with
//! prost; there is no protoc here), a zero-copy decoder for the ingest hot
//! path, and snappy with a decompressed-size limit.
//!
//! Invariants:
//! - [`visit`] borrows from the request buffer and reuses scratch vectors:
//!   nothing is allocated per series or sample, and labels are not even
//!   decoded unless asked for: a series' raw label bytes are its cache key
//!   (prost's owned messages cost two `String`s per label, and UTF-8
//!   checks of every label were the next hot spot). The prost types stay
//!   for encoding and as the reference the decoder is tested against.
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

/// Decompresses a snappy block-format body, refusing one whose declared
/// size is above `max_decompressed` before allocating.
pub fn decompress(body: &[u8], max_decompressed: usize) -> Result<Vec<u8>, DecodeError> {
    let declared = snap::raw::decompress_len(body)?;
    if declared > max_decompressed {
        return Err(DecodeError::TooLarge {
            declared,
            limit: max_decompressed,
        });
    }
    Ok(snap::raw::Decoder::new().decompress_vec(body)?)
}

/// Decompresses and decodes a `WriteRequest` into owned messages.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<WriteRequest, DecodeError> {
    let raw = decompress(body, max_decompressed)?;
    Ok(prost::Message::decode(raw.as_slice())?)
}

/// A protobuf field the zero-copy decoder could not read.
#[derive(Debug, thiserror::Error)]
#[error("invalid protobuf WriteRequest at byte {offset}: {what}")]
pub struct WireError {
    pub offset: usize,
    pub what: &'static str,
}

/// One series of a request, borrowed from the decompressed buffer.
pub struct SeriesRef<'a> {
    /// The series' `Label` fields exactly as encoded: a cache key (equal
    /// bytes, equal series) that costs no decoding.
    pub key: &'a [u8],
    /// `(timestamp_ms, value)` in wire order.
    pub samples: &'a [(i64, f64)],
    /// Each `Label` message, decoded only on demand by [`SeriesRef::labels`].
    label_msgs: &'a [(usize, &'a [u8])],
}

impl<'a> SeriesRef<'a> {
    /// Decodes the labels `(name, value)` in wire order into `out`
    /// (cleared first), checking that they are UTF-8.
    pub fn labels(&self, out: &mut Vec<(&'a str, &'a str)>) -> Result<(), WireError> {
        out.clear();
        for &(offset, msg) in self.label_msgs {
            out.push(label(msg).map_err(|e| e.shift(offset))?);
        }
        Ok(())
    }
}

/// Walks a decompressed `WriteRequest`, calling `on_series` for every
/// `TimeSeries` and `on_metadata` for every `MetricMetadata`, without
/// allocating or decoding labels per series (see [`SeriesRef`]). Exemplars
/// and native histograms are skipped.
pub fn visit<'a>(
    raw: &'a [u8],
    mut on_series: impl FnMut(&SeriesRef<'_>),
    mut on_metadata: impl FnMut(MetricMetadata),
) -> Result<(), WireError> {
    let mut label_msgs: Vec<(usize, &'a [u8])> = Vec::new();
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let mut key_scratch: Vec<u8> = Vec::new();
    let mut r = Wire { buf: raw, pos: 0 };
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (1, 2) => {
                let ts = r.bytes()?;
                let base = r.pos - ts.len();
                label_msgs.clear();
                samples.clear();
                // Byte range of the label fields, and whether other fields
                // interrupt it (then the key is assembled in a scratch buffer).
                let (mut first, mut last, mut contiguous) = (None, 0, true);
                let mut t = Wire { buf: ts, pos: 0 };
                while !t.done() {
                    let field_start = t.pos;
                    let (f, w) = t.key().map_err(|e| e.shift(base))?;
                    match (f, w) {
                        (1, 2) => {
                            let l = t.bytes().map_err(|e| e.shift(base))?;
                            label_msgs.push((base + t.pos - l.len(), l));
                            if first.is_none() {
                                first = Some(field_start);
                            } else if last != field_start {
                                contiguous = false;
                            }
                            last = t.pos;
                        }
                        (2, 2) => {
                            let s = t.bytes().map_err(|e| e.shift(base))?;
                            samples.push(sample(s).map_err(|e| e.shift(base + t.pos - s.len()))?);
                        }
                        _ => t.skip(w).map_err(|e| e.shift(base))?,
                    }
                }
                let key: &[u8] = match first {
                    None => &[],
                    Some(first) if contiguous => &ts[first..last],
                    Some(_) => {
                        key_scratch.clear();
                        for (_, msg) in &label_msgs {
                            key_scratch.extend_from_slice(&(msg.len() as u32).to_le_bytes());
                            key_scratch.extend_from_slice(msg);
                        }
                        &key_scratch
                    }
                };
                on_series(&SeriesRef {
                    key,
                    samples: &samples,
                    label_msgs: &label_msgs,
                });
            }
            (3, 2) => {
                let m = r.bytes()?;
                on_metadata(prost::Message::decode(m).map_err(|_| WireError {
                    offset: r.pos - m.len(),
                    what: "bad MetricMetadata",
                })?);
            }
            _ => r.skip(wt)?,
        }
    }
    Ok(())
}

fn label(b: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut name, mut value) = ("", "");
    let mut r = Wire { buf: b, pos: 0 };
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, 2) => name = r.str()?,
            (2, 2) => value = r.str()?,
            _ => r.skip(w)?,
        }
    }
    Ok((name, value))
}

fn sample(b: &[u8]) -> Result<(i64, f64), WireError> {
    let (mut ts, mut v) = (0i64, 0f64);
    let mut r = Wire { buf: b, pos: 0 };
    while !r.done() {
        let (f, w) = r.key()?;
        match (f, w) {
            (1, 1) => v = f64::from_bits(r.fixed64()?),
            (2, 0) => ts = r.varint()? as i64,
            _ => r.skip(w)?,
        }
    }
    Ok((ts, v))
}

/// A bounds-checked protobuf reader.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl WireError {
    fn shift(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

impl<'a> Wire<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn err(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.pos,
            what,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<(u64, u8), WireError> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()? as usize;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err("length runs past the end"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError {
            offset: at,
            what: "string is not UTF-8",
        })
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| self.err("truncated fixed64"))?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.bytes().map(drop),
            5 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err(self.err("unsupported wire type")),
        }
    }
}

/// Encodes and compresses a request (used by tests and the forwarder).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input below 4 GiB")
}

/// Checks a series' labels and builds its label set, or says what is wrong.
pub fn series_labels(labels: &[(&str, &str)]) -> Result<Labels, String> {
    let mut seen: Vec<&str> = Vec::with_capacity(labels.len());
    for (name, _) in labels {
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if seen.contains(name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        seen.push(name);
    }
    let set = Labels::from_pairs(labels.iter().copied());
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
        assert!(series_labels(&[("__name__", "up"), ("job", "x")]).is_ok());
        let e = series_labels(&[("job", "x")]).unwrap_err();
        assert!(e.contains("__name__"), "{e}");
        let e = series_labels(&[("__name__", "up"), ("1bad", "x")]).unwrap_err();
        assert!(e.contains("\"1bad\""), "{e}");
        let e = series_labels(&[("__name__", "up"), ("a", "1"), ("a", "2")]).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        let e = series_labels(&[("__name__", "bad-name")]).unwrap_err();
        assert!(e.contains("metric name"), "{e}");
    }

    fn visit_all(raw: &[u8]) -> Result<(Vec<TimeSeries>, Vec<MetricMetadata>), WireError> {
        let (mut series, mut meta) = (Vec::new(), Vec::new());
        visit(
            raw,
            |s| {
                let mut labels = Vec::new();
                s.labels(&mut labels).expect("valid UTF-8 labels");
                series.push(TimeSeries {
                    labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
                    samples: s
                        .samples
                        .iter()
                        .map(|(t, v)| Sample {
                            timestamp: *t,
                            value: *v,
                        })
                        .collect(),
                })
            },
            |m| meta.push(m),
        )?;
        Ok((series, meta))
    }

    proptest::proptest! {
        /// The zero-copy decoder reads exactly what prost reads, and never
        /// panics on a truncated request.
        #[test]
        fn visit_agrees_with_prost(
            series in proptest::collection::vec(
                (
                    proptest::collection::vec(("[a-z_]{1,8}", "\\PC{0,12}"), 0..5),
                    proptest::collection::vec(
                        (proptest::prelude::any::<i64>(), proptest::prelude::any::<u64>()),
                        0..5,
                    ),
                ),
                0..6,
            ),
            help in "\\PC{0,20}",
        ) {
            let req = WriteRequest {
                timeseries: series
                    .iter()
                    .map(|(ls, ss)| TimeSeries {
                        labels: ls.iter().map(|(n, v)| label(n, v)).collect(),
                        samples: ss
                            .iter()
                            .map(|(t, v)| Sample { timestamp: *t, value: f64::from_bits(*v) })
                            .collect(),
                    })
                    .collect(),
                metadata: vec![MetricMetadata {
                    r#type: 1,
                    metric_family_name: "m".into(),
                    help,
                    unit: String::new(),
                }],
            };
            let raw = prost::Message::encode_to_vec(&req);
            let (got, meta) = visit_all(&raw).unwrap();
            proptest::prop_assert_eq!(got.len(), req.timeseries.len());
            for (g, w) in got.iter().zip(&req.timeseries) {
                proptest::prop_assert_eq!(&g.labels, &w.labels);
                let bits = |s: &[Sample]| {
                    s.iter().map(|s| (s.timestamp, s.value.to_bits())).collect::<Vec<_>>()
                };
                proptest::prop_assert_eq!(bits(&g.samples), bits(&w.samples));
            }
            proptest::prop_assert_eq!(meta, req.metadata);
            for cut in 0..raw.len() {
                let _ = visit_all(&raw[..cut]);
            }
        }
    }

    /// Labels interleaved with samples still give one key per label set.
    #[test]
    fn interleaved_label_fields_make_a_stable_key() {
        fn field(tag: u8, body: &[u8], out: &mut Vec<u8>) {
            out.push(tag << 3 | 2);
            out.push(body.len() as u8);
            out.extend_from_slice(body);
        }
        let enc = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            m(&mut v);
            v
        };
        let a = prost::Message::encode_to_vec(&label("__name__", "up"));
        let b = prost::Message::encode_to_vec(&label("job", "x"));
        let smp = prost::Message::encode_to_vec(&Sample {
            value: 1.0,
            timestamp: 5,
        });
        let series = enc(&|v| {
            field(1, &a, v);
            field(2, &smp, v);
            field(1, &b, v);
        });
        let req = enc(&|v| {
            field(1, &series, v);
            field(1, &series, v);
        });
        let mut keys = Vec::new();
        visit(
            &req,
            |s| {
                let mut labels = Vec::new();
                s.labels(&mut labels).unwrap();
                assert_eq!(labels, vec![("__name__", "up"), ("job", "x")]);
                assert_eq!(s.samples, &[(5, 1.0)]);
                keys.push(s.key.to_vec());
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0], keys[1]);
        assert!(
            keys[0].len() > a.len() + b.len(),
            "assembled from both labels"
        );
    }
}
