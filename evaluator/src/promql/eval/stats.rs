//! Numeric helpers shared by aggregations and `*_over_time` functions,
//! following Prometheus' choices (Kahan summation, quantile interpolation).

/// Kahan-compensated running sum.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if t.is_infinite() {
            self.c = 0.0;
        } else if self.sum.abs() >= v.abs() {
            self.c += (self.sum - t) + v;
        } else {
            self.c += (v - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Mean as Prometheus computes it: a compensated sum divided by the count,
/// switching to a compensated incremental mean once the sum overflows.
pub(crate) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = KahanSum::default();
    let mut n = 0.0;
    let mut incremental = false;
    let mut m = KahanSum::default();
    for v in values {
        n += 1.0;
        if n == 1.0 {
            sum.add(v);
            continue;
        }
        if !incremental {
            let mut next = sum;
            next.add(v);
            if !next.sum.is_infinite() {
                sum = next;
                continue;
            }
            incremental = true;
            m = KahanSum {
                sum: sum.sum / (n - 1.0),
                c: sum.c / (n - 1.0),
            };
        }
        if m.sum.is_infinite() {
            if v.is_infinite() && (m.sum > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let q = (n - 1.0) / n;
        let mut next = KahanSum {
            sum: q * m.sum,
            c: q * m.c,
        };
        next.add(v / n);
        m = next;
    }
    if incremental {
        m.value()
    } else {
        sum.sum / n + sum.c / n
    }
}

/// Population variance (Welford's algorithm).
pub(crate) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let mut n = 0.0;
    let mut mean = 0.0;
    let mut m2 = 0.0;
    for v in values {
        n += 1.0;
        let delta = v - mean;
        mean += delta / n;
        m2 += delta * (v - mean);
    }
    m2 / n
}

/// The φ-quantile of `values` with linear interpolation between ranks.
pub(crate) fn quantile(phi: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    // NaNs sort first in Prometheus (Go's sort.Float64s).
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Formats a float like Go's `strconv.FormatFloat(f, 'f', -1, 64)`, which
/// Prometheus uses for `count_values` labels.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}
