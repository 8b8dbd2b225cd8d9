//! The record payloads the engine writes into the WAL.
//!
//! The log itself (`segment`, `writer`, `replay`) treats payloads as opaque
//! bytes; this module alone knows what they contain.
//!
//! ```text
//! payload := type:u8 body
//!
//! type 1, Samples (a batch of samples, usually one ingest batch):
//!   count:uvarint
//!   first entry:  series_id:uvarint  ts:varint            value:u64 LE
//!   each next:    id_delta:varint    ts_delta:varint      value:u64 LE
//!   (deltas are relative to the FIRST entry, wrapping, zigzag-encoded)
//!
//! type 2, Series (new series definitions):
//!   count:uvarint
//!   each entry:   series_id:uvarint  len:uvarint  labels:[u8; len]
//!   (labels are the canonical bytes of `Labels::encode_into`; opaque here)
//! ```
//!
//! Invariants:
//! - Type bytes are [`RecordKind`] discriminants; they are never reused, and
//!   0 is reserved so that zero-filled bytes never decode as a record.
//! - Values are stored as raw IEEE-754 bits, so NaN payloads (the stale
//!   marker) survive bit-exactly.
//! - Decoding is strict: it checks every bound, rejects trailing bytes, and
//!   never allocates more than the input could possibly describe.
//! - Encoding is canonical: decoding and re-encoding a record produces the
//!   same bytes as encoding the decoded entries.

use super::cursor::{Cursor, put_uvarint, put_varint};
use crate::types::SeriesId;

/// The leading type byte of a record payload.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    // 0 is reserved: never assign it.
    /// A batch of `(series, timestamp, value)` samples.
    Samples = 1,
    /// A batch of series definitions (id + canonical label bytes).
    Series = 2,
}

impl RecordKind {
    /// The kind for a type byte, if it is one this build knows.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Samples),
            2 => Some(Self::Series),
            _ => None,
        }
    }
}

/// Smallest encoded size of one sample entry: 1-byte id, 1-byte ts, 8-byte
/// value. Bounds how many entries a payload can claim before we trust it.
const MIN_SAMPLE_LEN: usize = 10;
/// Smallest encoded size of one series entry: 1-byte id, 1-byte length.
const MIN_SERIES_LEN: usize = 2;

/// Why a payload is not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("empty record payload")]
    Empty,
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("record truncated at byte {at}: needed {needed} bytes, {left} left")]
    Truncated {
        at: usize,
        needed: usize,
        left: usize,
    },
    #[error("varint at byte {at} overflows 64 bits")]
    VarintOverflow { at: usize },
    #[error("record claims {count} entries but only {left} bytes remain")]
    CountTooLarge { count: u64, left: usize },
    #[error("{count} trailing bytes after the record body")]
    TrailingBytes { count: usize },
}

/// A validated record borrowing its payload.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    Samples(SamplesRef<'a>),
    Series(SeriesDefsRef<'a>),
}

impl<'a> Record<'a> {
    /// Validates the whole payload and returns a view over it. Iterating the
    /// view afterwards cannot fail.
    ///
    /// # Errors
    /// [`RecordError`] when `payload` is not a complete, valid record.
    pub fn decode(payload: &'a [u8]) -> Result<Self, RecordError> {
        let mut cur = Cursor::new(payload);
        let kind = read_kind(&mut cur)?;
        let count = read_count(&mut cur, kind)?;
        let body = payload
            .get(payload.len() - cur.remaining()..)
            .unwrap_or_default();
        // Validate on the same cursor so error offsets are payload offsets.
        match kind {
            RecordKind::Samples => {
                decode_samples_body(&mut cur, count, |_| {})?;
                Ok(Record::Samples(SamplesRef { count, body }))
            }
            RecordKind::Series => {
                for _ in 0..count {
                    read_series_entry(&mut cur)?;
                }
                expect_end(&cur)?;
                Ok(Record::Series(SeriesDefsRef { count, body }))
            }
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Samples(_) => RecordKind::Samples,
            Record::Series(_) => RecordKind::Series,
        }
    }

    /// Appends the canonical encoding of this record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Samples(s) => encode_samples(s.iter(), out),
            Record::Series(s) => encode_series(s.iter(), out),
        }
    }
}

/// Appends a Samples record holding `entries` to `out` (the caller owns and
/// reuses the buffer). Values are written bit-exactly.
pub fn encode_samples(
    entries: impl ExactSizeIterator<Item = (SeriesId, i64, f64)>,
    out: &mut Vec<u8>,
) {
    let n = entries.len();
    // Typical entry: small id delta, 1-3 byte ts delta, 8-byte value.
    out.reserve(1 + super::cursor::MAX_VARINT_LEN + n * 12);
    out.push(RecordKind::Samples as u8);
    put_uvarint(out, n as u64);
    let mut first: Option<(u64, i64)> = None;
    let mut written = 0usize;
    for (id, ts, value) in entries {
        match first {
            None => {
                put_uvarint(out, id.0);
                put_varint(out, ts);
                first = Some((id.0, ts));
            }
            Some((id0, ts0)) => {
                put_varint(out, id.0.wrapping_sub(id0) as i64);
                put_varint(out, ts.wrapping_sub(ts0));
            }
        }
        out.extend_from_slice(&value.to_bits().to_le_bytes());
        written += 1;
    }
    debug_assert_eq!(written, n, "ExactSizeIterator lied about its length");
}

/// Appends a Series record holding `(id, canonical label bytes)` entries.
pub fn encode_series<'l>(
    entries: impl ExactSizeIterator<Item = (SeriesId, &'l [u8])>,
    out: &mut Vec<u8>,
) {
    out.push(RecordKind::Series as u8);
    put_uvarint(out, entries.len() as u64);
    for (id, labels) in entries {
        put_uvarint(out, id.0);
        put_uvarint(out, labels.len() as u64);
        out.extend_from_slice(labels);
    }
}

/// Decodes `payload`, replacing the contents of `out_samples` with its
/// samples (left empty for non-sample records). The buffer is reused, so a
/// replay loop allocates only while it grows to its largest batch.
///
/// # Errors
/// [`RecordError`] when `payload` is not a valid record; `out_samples` then
/// holds an unspecified prefix of the entries.
pub fn decode_record(
    payload: &[u8],
    out_samples: &mut Vec<(SeriesId, i64, f64)>,
) -> Result<RecordKind, RecordError> {
    out_samples.clear();
    match Record::decode_kind_fast(payload, out_samples)? {
        RecordKind::Samples => Ok(RecordKind::Samples),
        RecordKind::Series => {
            Record::decode(payload)?;
            Ok(RecordKind::Series)
        }
    }
}

impl Record<'_> {
    /// Decodes Samples bodies straight into `out` (one pass); other kinds
    /// are only identified.
    fn decode_kind_fast(
        payload: &[u8],
        out: &mut Vec<(SeriesId, i64, f64)>,
    ) -> Result<RecordKind, RecordError> {
        let mut cur = Cursor::new(payload);
        let kind = read_kind(&mut cur)?;
        if kind == RecordKind::Samples {
            let count = read_count(&mut cur, kind)?;
            out.reserve(count);
            decode_samples_body(&mut cur, count, |e| out.push(e))?;
        }
        Ok(kind)
    }
}

/// A validated Samples record.
#[derive(Clone, Copy, Debug)]
pub struct SamplesRef<'a> {
    count: usize,
    body: &'a [u8],
}

impl<'a> SamplesRef<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> SamplesIter<'a> {
        SamplesIter {
            cur: Cursor::new(self.body),
            left: self.count,
            first: None,
        }
    }
}

/// Iterates a [`SamplesRef`]'s entries in order.
pub struct SamplesIter<'a> {
    cur: Cursor<'a>,
    left: usize,
    first: Option<(u64, i64)>,
}

impl Iterator for SamplesIter<'_> {
    type Item = (SeriesId, i64, f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        match read_sample(&mut self.cur, &mut self.first) {
            Ok(e) => {
                self.left -= 1;
                Some(e)
            }
            Err(e) => {
                debug_assert!(false, "validated samples body failed to decode: {e}");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SamplesIter<'_> {}

/// A validated Series record.
#[derive(Clone, Copy, Debug)]
pub struct SeriesDefsRef<'a> {
    count: usize,
    body: &'a [u8],
}

impl<'a> SeriesDefsRef<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> SeriesDefsIter<'a> {
        SeriesDefsIter {
            cur: Cursor::new(self.body),
            left: self.count,
        }
    }
}

/// Iterates a [`SeriesDefsRef`]'s `(id, canonical label bytes)` entries.
pub struct SeriesDefsIter<'a> {
    cur: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for SeriesDefsIter<'a> {
    type Item = (SeriesId, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        match read_series_entry(&mut self.cur) {
            Ok(e) => {
                self.left -= 1;
                Some(e)
            }
            Err(e) => {
                debug_assert!(false, "validated series body failed to decode: {e}");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SeriesDefsIter<'_> {}

fn read_kind(cur: &mut Cursor<'_>) -> Result<RecordKind, RecordError> {
    let b = cur.u8().map_err(|_| RecordError::Empty)?;
    RecordKind::from_u8(b).ok_or(RecordError::UnknownType(b))
}

/// Reads the entry count and rejects counts the remaining bytes cannot hold,
/// so a corrupt count never drives a huge allocation.
fn read_count(cur: &mut Cursor<'_>, kind: RecordKind) -> Result<usize, RecordError> {
    let count = cur.uvarint()?;
    let min = match kind {
        RecordKind::Samples => MIN_SAMPLE_LEN,
        RecordKind::Series => MIN_SERIES_LEN,
    };
    let left = cur.remaining();
    match usize::try_from(count) {
        Ok(n) if n <= left / min => Ok(n),
        _ => Err(RecordError::CountTooLarge { count, left }),
    }
}

fn read_sample(
    cur: &mut Cursor<'_>,
    first: &mut Option<(u64, i64)>,
) -> Result<(SeriesId, i64, f64), RecordError> {
    let (id, ts) = match *first {
        None => {
            let id = cur.uvarint()?;
            let ts = cur.varint()?;
            *first = Some((id, ts));
            (id, ts)
        }
        Some((id0, ts0)) => {
            let id = id0.wrapping_add(cur.varint()? as u64);
            let ts = ts0.wrapping_add(cur.varint()?);
            (id, ts)
        }
    };
    let value = f64::from_bits(cur.u64_le()?);
    Ok((SeriesId(id), ts, value))
}

fn decode_samples_body(
    cur: &mut Cursor<'_>,
    count: usize,
    mut sink: impl FnMut((SeriesId, i64, f64)),
) -> Result<(), RecordError> {
    let mut first = None;
    for _ in 0..count {
        sink(read_sample(cur, &mut first)?);
    }
    expect_end(cur)
}

fn read_series_entry<'a>(cur: &mut Cursor<'a>) -> Result<(SeriesId, &'a [u8]), RecordError> {
    let id = cur.uvarint()?;
    let len = cur.uvarint()?;
    // A length beyond usize cannot fit in the input either.
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    Ok((SeriesId(id), cur.bytes(len)?))
}

fn expect_end(cur: &Cursor<'_>) -> Result<(), RecordError> {
    match cur.remaining() {
        0 => Ok(()),
        count => Err(RecordError::TrailingBytes { count }),
    }
}

/// Fuzz property for record decoding (see `fuzz/README.md`): never panics;
/// the two decoders agree; a payload that decodes re-encodes to bytes that
/// decode to the same record, and that re-encoding is canonical.
#[doc(hidden)]
pub fn fuzz_check_record_decode(data: &[u8]) {
    let mut samples = Vec::new();
    let fast = decode_record(data, &mut samples);
    let full = Record::decode(data);
    match (&fast, &full) {
        (Ok(k), Ok(r)) => assert_eq!(*k, r.kind()),
        (Err(a), Err(b)) => assert_eq!(a, b, "decoders disagree on the error"),
        _ => panic!("decoders disagree: {fast:?} vs {full:?}"),
    }
    let Ok(record) = full else { return };

    let mut once = Vec::new();
    record.encode(&mut once);
    let again = Record::decode(&once).expect("a re-encoded record must decode");
    assert_eq!(record.kind(), again.kind());
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(once, twice, "encoding is not canonical");

    match (record, again) {
        (Record::Samples(a), Record::Samples(b)) => {
            assert!(a.iter().map(sample_bits).eq(b.iter().map(sample_bits)));
            assert!(
                a.iter()
                    .map(sample_bits)
                    .eq(samples.iter().copied().map(sample_bits))
            );
        }
        (Record::Series(a), Record::Series(b)) => {
            assert!(a.iter().eq(b.iter()));
            assert!(samples.is_empty());
        }
        _ => unreachable!("kinds compared equal above"),
    }
}

fn sample_bits((id, ts, v): (SeriesId, i64, f64)) -> (SeriesId, i64, u64) {
    (id, ts, v.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(v: &[(SeriesId, i64, f64)]) -> Vec<(SeriesId, i64, u64)> {
        v.iter().copied().map(sample_bits).collect()
    }

    #[test]
    fn samples_layout_is_compact_and_pinned() {
        let entries = [(SeriesId(7), 1000, 1.5), (SeriesId(9), 990, f64::NAN)];
        let mut out = Vec::new();
        encode_samples(entries.iter().copied(), &mut out);
        let mut want = vec![1, 2, 7, 0xd0, 0x0f];
        want.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        want.extend_from_slice(&[4, 19]); // +2 zigzag, -10 zigzag
        want.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn decode_rejects_bad_payloads() {
        let mut v = Vec::new();
        assert_eq!(decode_record(&[], &mut v), Err(RecordError::Empty));
        assert_eq!(
            decode_record(&[0], &mut v),
            Err(RecordError::UnknownType(0))
        );
        assert_eq!(
            decode_record(&[9, 0], &mut v),
            Err(RecordError::UnknownType(9))
        );
        // A count no body could hold must not allocate.
        assert_eq!(
            decode_record(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut v),
            Err(RecordError::CountTooLarge {
                count: u64::from(u32::MAX),
                left: 0
            })
        );
        let mut ok = Vec::new();
        encode_samples([(SeriesId(1), 2, 3.0)].into_iter(), &mut ok);
        ok.push(0);
        assert_eq!(
            decode_record(&ok, &mut v),
            Err(RecordError::TrailingBytes { count: 1 })
        );
        ok.truncate(ok.len() - 2);
        assert!(matches!(
            decode_record(&ok, &mut v),
            Err(RecordError::CountTooLarge { .. })
        ));
        // An empty batch is valid.
        let mut empty = Vec::new();
        encode_samples(std::iter::empty(), &mut empty);
        assert_eq!(decode_record(&empty, &mut v), Ok(RecordKind::Samples));
        assert!(v.is_empty());
    }

    #[test]
    fn series_roundtrip() {
        let a = crate::Labels::metric("up", [("job", "node")]);
        let mut la = Vec::new();
        a.encode_into(&mut la);
        let entries: Vec<(SeriesId, &[u8])> = vec![(SeriesId(3), &la), (SeriesId(u64::MAX), b"")];
        let mut out = Vec::new();
        encode_series(entries.iter().copied(), &mut out);
        let mut v = vec![(SeriesId(0), 0, 0.0)];
        assert_eq!(decode_record(&out, &mut v), Ok(RecordKind::Series));
        assert!(v.is_empty(), "series records leave the sample buffer empty");
        let Ok(Record::Series(s)) = Record::decode(&out) else {
            panic!("not a series record")
        };
        assert_eq!(s.iter().collect::<Vec<_>>(), entries);
        fuzz_check_record_decode(&out);
    }

    #[test]
    fn valid_fuzz_seeds_decode() {
        // The seed corpus must reach the re-encode branch of the property,
        // not only the error paths.
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wal_record");
        let mut v = Vec::new();
        for (name, kind, n) in [
            ("samples_three", RecordKind::Samples, 3),
            ("samples_empty", RecordKind::Samples, 0),
            ("samples_extremes", RecordKind::Samples, 2),
            ("samples_noncanonical_varint", RecordKind::Samples, 1),
            ("series_one", RecordKind::Series, 0),
        ] {
            let data = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(decode_record(&data, &mut v), Ok(kind), "{name}");
            assert_eq!(v.len(), n, "{name}");
        }
        let data = std::fs::read(dir.join("samples_three")).unwrap();
        decode_record(&data, &mut v).unwrap();
        assert!(
            crate::types::is_stale_marker(v[1].2),
            "stale NaN kept bit-exact"
        );
    }

    fn arb_value() -> impl Strategy<Value = f64> {
        // Raw bits cover every NaN payload, infinities and subnormals.
        prop_oneof![any::<u64>().prop_map(f64::from_bits), any::<f64>()]
    }

    proptest! {
        #[test]
        fn samples_roundtrip_bit_exact(
            entries in proptest::collection::vec((any::<u64>(), any::<i64>(), arb_value()), 0..200)
        ) {
            let entries: Vec<_> = entries.into_iter().map(|(i, t, v)| (SeriesId(i), t, v)).collect();
            let mut out = vec![0xaa]; // encoding appends to what is there
            encode_samples(entries.iter().copied(), &mut out);
            let mut got = Vec::new();
            prop_assert_eq!(decode_record(&out[1..], &mut got), Ok(RecordKind::Samples));
            prop_assert_eq!(bits(&got), bits(&entries));
            let Ok(Record::Samples(s)) = Record::decode(&out[1..]) else { panic!("not samples") };
            prop_assert_eq!(s.len(), entries.len());
            prop_assert_eq!(bits(&s.iter().collect::<Vec<_>>()), bits(&entries));
            fuzz_check_record_decode(&out[1..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            fuzz_check_record_decode(&data);
        }

        #[test]
        fn mutated_records_never_panic(
            entries in proptest::collection::vec((0u64..1000, any::<i64>(), arb_value()), 1..20),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let entries: Vec<_> = entries.into_iter().map(|(i, t, v)| (SeriesId(i), t, v)).collect();
            let mut out = Vec::new();
            encode_samples(entries.iter().copied(), &mut out);
            let i = at.index(out.len());
            out[i] = byte;
            fuzz_check_record_decode(&out);
            fuzz_check_record_decode(&out[..i]);
        }
    }
}
