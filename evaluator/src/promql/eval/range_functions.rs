//! Functions over range vectors: rate/increase/delta and friends, the
//! `*_over_time` family, derivatives and counter-reset counting.

use crate::store::Point;

use super::stats::{mean, quantile, variance, KahanSum};

/// What one range function computes from the points of one series.
pub(crate) type RangeFn = fn(&RangeInput<'_>) -> Option<f64>;

/// The points of one series plus the window they were selected from.
pub(crate) struct RangeInput<'a> {
    pub points: &'a [Point],
    pub range_start: i64,
    pub range_end: i64,
    /// The evaluation time (predict_linear's intercept).
    pub t: i64,
    /// A scalar argument (quantile_over_time's φ, predict_linear's duration).
    pub arg: f64,
}

/// Prometheus' extrapolated rate: extend the sampled interval towards the
/// window edges unless the gap is too large, and never below zero for counters.
fn extrapolated(input: &RangeInput<'_>, counter: bool, per_second: bool) -> Option<f64> {
    let p = input.points;
    if p.len() < 2 {
        return None;
    }
    let Point {
        t: first_t,
        v: first_v,
    } = p[0];
    let Point {
        t: last_t,
        v: last_v,
    } = p[p.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut prev = first_v;
        for &Point { v, .. } in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first_t - input.range_start) as f64 / 1000.0;
    let to_end = (input.range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_gap = sampled / (p.len() - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    if counter && result > 0.0 && first_v >= 0.0 {
        // A counter cannot be extrapolated below zero.
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let mut interval = sampled + to_start;
    interval += if to_end >= threshold {
        avg_gap / 2.0
    } else {
        to_end
    };
    let mut factor = interval / sampled;
    if per_second {
        factor /= (input.range_end - input.range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

pub(crate) fn rate(i: &RangeInput<'_>) -> Option<f64> {
    extrapolated(i, true, true)
}
pub(crate) fn increase(i: &RangeInput<'_>) -> Option<f64> {
    extrapolated(i, true, false)
}
pub(crate) fn delta(i: &RangeInput<'_>) -> Option<f64> {
    extrapolated(i, false, false)
}

fn instant(i: &RangeInput<'_>, is_rate: bool) -> Option<f64> {
    let p = i.points;
    if p.len() < 2 {
        return None;
    }
    let Point { t: t1, v: v1 } = p[p.len() - 2];
    let Point { t: t2, v: v2 } = p[p.len() - 1];
    let mut d = v2 - v1;
    if is_rate {
        if v2 < v1 {
            d = v2;
        }
        let dt = (t2 - t1) as f64 / 1000.0;
        if dt == 0.0 {
            return None;
        }
        d /= dt;
    }
    Some(d)
}

pub(crate) fn irate(i: &RangeInput<'_>) -> Option<f64> {
    instant(i, true)
}
pub(crate) fn idelta(i: &RangeInput<'_>) -> Option<f64> {
    instant(i, false)
}

/// Least-squares slope and intercept, x in seconds relative to `intercept_t`.
fn linear_regression(p: &[Point], intercept_t: i64) -> (f64, f64) {
    let n = p.len() as f64;
    let const_y = p.windows(2).all(|w| w[0].v == w[1].v);
    if const_y {
        let y = p[0].v;
        if y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, y);
    }
    let (mut sx, mut sy, mut sxy, mut sx2) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    for &Point { t, v } in p {
        let x = (t - intercept_t) as f64 / 1000.0;
        sx.add(x);
        sy.add(v);
        sxy.add(x * v);
        sx2.add(x * x);
    }
    let (sx, sy, sxy, sx2) = (sx.value(), sy.value(), sxy.value(), sx2.value());
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

pub(crate) fn deriv(i: &RangeInput<'_>) -> Option<f64> {
    if i.points.len() < 2 {
        return None;
    }
    Some(linear_regression(i.points, i.points[0].t).0)
}

pub(crate) fn predict_linear(i: &RangeInput<'_>) -> Option<f64> {
    if i.points.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(i.points, i.t);
    Some(slope * i.arg + intercept)
}

pub(crate) fn resets(i: &RangeInput<'_>) -> Option<f64> {
    Some(i.points.windows(2).filter(|w| w[1].v < w[0].v).count() as f64)
}

pub(crate) fn changes(i: &RangeInput<'_>) -> Option<f64> {
    Some(
        i.points
            .windows(2)
            .filter(|w| w[1].v != w[0].v && !(w[1].v.is_nan() && w[0].v.is_nan()))
            .count() as f64,
    )
}

fn values<'a>(i: &'a RangeInput<'_>) -> impl Iterator<Item = f64> + 'a {
    i.points.iter().map(|p| p.v)
}

pub(crate) fn avg_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(mean(values(i)))
}
pub(crate) fn sum_over_time(i: &RangeInput<'_>) -> Option<f64> {
    let mut k = KahanSum::default();
    values(i).for_each(|v| k.add(v));
    Some(k.value())
}
pub(crate) fn count_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(i.points.len() as f64)
}
pub(crate) fn min_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(values(i).fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }))
}
pub(crate) fn max_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(values(i).fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }))
}
pub(crate) fn last_over_time(i: &RangeInput<'_>) -> Option<f64> {
    i.points.last().map(|p| p.v)
}
pub(crate) fn present_over_time(_: &RangeInput<'_>) -> Option<f64> {
    Some(1.0)
}
pub(crate) fn stddev_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(variance(values(i)).sqrt())
}
pub(crate) fn stdvar_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(variance(values(i)))
}
pub(crate) fn quantile_over_time(i: &RangeInput<'_>) -> Option<f64> {
    Some(quantile(i.arg, &mut values(i).collect::<Vec<f64>>()))
}

/// The range function called `name`, if it is one.
pub(crate) fn lookup(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => rate,
        "increase" => increase,
        "delta" => delta,
        "irate" => irate,
        "idelta" => idelta,
        "deriv" => deriv,
        "predict_linear" => predict_linear,
        "resets" => resets,
        "changes" => changes,
        "avg_over_time" => avg_over_time,
        "sum_over_time" => sum_over_time,
        "count_over_time" => count_over_time,
        "min_over_time" => min_over_time,
        "max_over_time" => max_over_time,
        "last_over_time" => last_over_time,
        "present_over_time" => present_over_time,
        "stddev_over_time" => stddev_over_time,
        "stdvar_over_time" => stdvar_over_time,
        "quantile_over_time" => quantile_over_time,
        _ => return None,
    })
}
