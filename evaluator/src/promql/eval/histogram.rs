//! `histogram_quantile` over classic histograms (`_bucket` series with `le`).

use std::collections::HashMap;

use super::{ESample, Evaluator};
use crate::labels::Labels;
use crate::promql::SeriesSource;

/// Relative difference below which neighbouring bucket counts are treated
/// as equal (floating-point noise), as Prometheus does.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The φ-quantile from cumulative `(upper bound, count)` buckets; also says
/// whether the counts had to be forced monotonic.
fn bucket_quantile(phi: f64, mut buckets: Vec<(f64, f64)>) -> (f64, bool) {
    if phi.is_nan() {
        return (f64::NAN, false);
    }
    if phi < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if phi > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (ub, c) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    let mut buckets = merged;
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if cur < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let n = buckets.len();
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = phi * observations;
    let b = buckets[..n - 1].partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return (buckets[n - 2].0, forced);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Cumulative `(upper bound, count)` buckets grouped by series identity
/// (all labels but `le`; the name is kept so two histograms never merge).
fn group_buckets<S: SeriesSource + ?Sized>(
    ev: &Evaluator<'_, S>,
    input: Vec<ESample>,
) -> Vec<(Labels, Vec<(f64, f64)>)> {
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let bucket_label = ["le".to_string()];
    for s in input {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            ev.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"{}\" for metric name \"{}\"",
                s.labels.get("le").unwrap_or(""),
                s.labels.metric_name().unwrap_or("")
            ));
            continue;
        };
        let key = s.labels.drop_names(&bucket_label);
        match index.get(&key) {
            Some(i) => groups[*i].1.push((le, s.v)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(le, s.v)]));
            }
        }
    }
    groups
}

pub(crate) fn histogram_quantile<S: SeriesSource + ?Sized>(
    ev: &Evaluator<'_, S>,
    phi: f64,
    input: Vec<ESample>,
    t: i64,
) -> Vec<ESample> {
    if !(0.0..=1.0).contains(&phi) {
        ev.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            super::stats::format_float(phi)
        ));
    }
    let mut out = Vec::new();
    for (labels, buckets) in group_buckets(ev, input) {
        let (v, forced) = bucket_quantile(phi, buckets);
        if forced {
            ev.info(format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{}\"",
                labels.metric_name().unwrap_or("")
            ));
        }
        out.push(ESample {
            labels,
            t,
            v,
            drop_name: true,
        });
    }
    out
}

/// `histogram_fraction` over classic buckets: the share of observations
/// between `lower` and `upper`, interpolating linearly inside finite buckets
/// (an infinitely wide bucket contributes only when fully inside the range).
pub(crate) fn histogram_fraction<S: SeriesSource + ?Sized>(
    ev: &Evaluator<'_, S>,
    lower: f64,
    upper: f64,
    input: Vec<ESample>,
    t: i64,
) -> Vec<ESample> {
    let mut out = Vec::new();
    for (labels, mut buckets) in group_buckets(ev, input) {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let v = bucket_fraction(lower, upper, &buckets);
        out.push(ESample {
            labels,
            t,
            v,
            drop_name: true,
        });
    }
    out
}

fn bucket_fraction(lower: f64, upper: f64, buckets: &[(f64, f64)]) -> f64 {
    if lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 {
        return f64::NAN;
    }
    if upper <= lower {
        return 0.0;
    }
    let mut rank = 0.0;
    let mut prev_count = 0.0;
    let (mut lower_rank, mut upper_rank) = (None, None);
    for (i, &(ub, cum)) in buckets.iter().enumerate() {
        let lb = if i == 0 {
            if ub > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            buckets[i - 1].0
        };
        let count = cum - prev_count;
        prev_count = cum;
        let interpolate = |x: f64| {
            // No interpolation in an infinitely wide bucket: its
            // observations sit at its finite edge.
            if lb.is_infinite() {
                rank + count
            } else if ub.is_infinite() {
                rank
            } else {
                rank + count * (x - lb) / (ub - lb)
            }
        };
        if lower_rank.is_none() && lb >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && lb >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_none() && lb < lower && ub > lower {
            lower_rank = Some(interpolate(lower));
        }
        if upper_rank.is_none() && lb < upper && ub > upper {
            upper_rank = Some(interpolate(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank += count;
    }
    let lo = lower_rank.unwrap_or(total).min(total);
    let hi = upper_rank.unwrap_or(total).min(total);
    (hi - lo) / total
}
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}
