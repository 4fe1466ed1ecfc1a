//! The remote-write 1.0 request body: a Prometheus `WriteRequest`
//! (protobuf: series, each with its labels sorted by name and its samples
//! in time order) compressed with Snappy's block format.

use std::collections::BTreeMap;

use crate::labels::Labels;
use crate::sample::Sample;

/// The compressed `WriteRequest` for `samples`: one time series per
/// distinct label set, in first-seen order, its samples in the order given.
pub fn encode_write_request(samples: &[Sample]) -> Vec<u8> {
    let mut series: Vec<(&Labels, Vec<&Sample>)> = Vec::new();
    let mut index: BTreeMap<&Labels, usize> = BTreeMap::new();
    for sample in samples {
        match index.get(&sample.labels) {
            Some(&i) => series[i].1.push(sample),
            None => {
                index.insert(&sample.labels, series.len());
                series.push((&sample.labels, vec![sample]));
            }
        }
    }
    let mut request = Vec::new();
    for (labels, samples) in series {
        let mut ts = Vec::new();
        for label in labels.iter() {
            let mut l = Vec::new();
            bytes_field(&mut l, 1, label.name.as_bytes());
            bytes_field(&mut l, 2, label.value.as_bytes());
            bytes_field(&mut ts, 1, &l);
        }
        for s in samples {
            let mut sample = Vec::new();
            // value: double, field 1 (fixed64); timestamp: int64, field 2.
            key(&mut sample, 1, 1);
            sample.extend_from_slice(&s.value.to_bits().to_le_bytes());
            key(&mut sample, 2, 0);
            varint(&mut sample, s.t_ms as u64);
            bytes_field(&mut ts, 2, &sample);
        }
        bytes_field(&mut request, 1, &ts);
    }
    snap::raw::Encoder::new()
        .compress_vec(&request)
        .unwrap_or_else(|e| unreachable!("snappy takes any input below 4 GiB: {e}"))
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the test: (field, wire type, payload).
    fn fields(mut data: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
        fn read_varint(data: &mut &[u8]) -> u64 {
            let mut value = 0;
            let mut shift = 0;
            loop {
                let byte = data[0];
                *data = &data[1..];
                value |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return value;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !data.is_empty() {
            let k = read_varint(&mut data);
            let payload = match k & 7 {
                0 => read_varint(&mut data).to_le_bytes().to_vec(),
                1 => {
                    let (v, rest) = data.split_at(8);
                    data = rest;
                    v.to_vec()
                }
                2 => {
                    let len = read_varint(&mut data) as usize;
                    let (v, rest) = data.split_at(len);
                    data = rest;
                    v.to_vec()
                }
                other => panic!("unexpected wire type {other}"),
            };
            out.push((k >> 3, k & 7, payload));
        }
        out
    }

    #[test]
    fn samples_of_one_series_share_a_time_series_with_sorted_labels() {
        let up = Labels::from_pairs([("job", "api"), ("__name__", "job:up:sum")]);
        let other = Labels::from_pairs([("__name__", "ALERTS"), ("alertname", "Down")]);
        let samples = [
            Sample {
                labels: up.clone(),
                t_ms: 1_000,
                value: 1.5,
            },
            Sample {
                labels: other,
                t_ms: 1_000,
                value: 1.0,
            },
            Sample {
                labels: up,
                t_ms: 2_000,
                value: f64::from_bits(0x7ff0_0000_0000_0002),
            },
        ];
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encode_write_request(&samples))
            .unwrap_or_else(|e| panic!("{e}"));
        let series = fields(&raw);
        assert_eq!(series.len(), 2);
        let first = fields(&series[0].2);
        let labels: Vec<(String, String)> = first
            .iter()
            .filter(|f| f.0 == 1)
            .map(|f| {
                let l = fields(&f.2);
                (
                    String::from_utf8_lossy(&l[0].2).into_owned(),
                    String::from_utf8_lossy(&l[1].2).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__".into(), "job:up:sum".into()),
                ("job".into(), "api".into())
            ]
        );
        let points: Vec<(u64, i64)> = first
            .iter()
            .filter(|f| f.0 == 2)
            .map(|f| {
                let s = fields(&f.2);
                let bits = u64::from_le_bytes(s[0].2[..8].try_into().unwrap_or_default());
                let t = u64::from_le_bytes(s[1].2[..8].try_into().unwrap_or_default());
                (bits, t as i64)
            })
            .collect();
        assert_eq!(
            points,
            [(1.5f64.to_bits(), 1_000), (0x7ff0_0000_0000_0002, 2_000)],
            "values keep their bits (staleness markers survive)"
        );
    }
}
