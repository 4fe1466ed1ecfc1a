//! Instant and range vector selectors: lookback, staleness, offset and `@`.

use promql_parser::label::Matcher;
use promql_parser::parser::{MatrixSelector, VectorSelector};

use std::rc::Rc;

use super::{ms_of_duration, ESample, ESeries, Evaluator};
use crate::promql::{SeriesSource, SeriesView};
use crate::store::is_stale;

/// The selector's matchers, with the metric name as an equality matcher
/// (the parser keeps `foo{...}`'s name apart from the braces).
pub(crate) fn matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut out: Vec<Matcher> = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        if !out.iter().any(|m| m.name == crate::labels::METRIC_NAME) {
            out.push(Matcher::new(
                promql_parser::label::MatchOp::Equal,
                crate::labels::METRIC_NAME,
                name,
            ));
        }
    }
    out
}

/// The part of `samples` with `min_t <= t <= max_t`. Windows usually sit
/// at the end of a series, so the search starts there and walks back a
/// little before falling back to binary search: this touches only the cache
/// lines the caller is about to read anyway.
fn window(samples: &[crate::store::Point], min_t: i64, max_t: i64) -> &[crate::store::Point] {
    const WALK: usize = 32;
    let to = match samples.last() {
        Some(last) if last.t <= max_t => samples.len(),
        _ => samples.partition_point(|s| s.t <= max_t),
    };
    let head = &samples[..to];
    let mut from = to;
    while from > 0 && to - from < WALK && head[from - 1].t >= min_t {
        from -= 1;
    }
    if from > 0 && to - from == WALK && head[from - 1].t >= min_t {
        from = head.partition_point(|s| s.t < min_t);
    }
    &head[from..]
}

/// The newest sample with `min_t <= t <= max_t`.
fn last_in(
    samples: &[crate::store::Point],
    min_t: i64,
    max_t: i64,
) -> Option<&crate::store::Point> {
    let to = match samples.last() {
        Some(last) if last.t <= max_t => samples.len(),
        _ => samples.partition_point(|s| s.t <= max_t),
    };
    samples[..to].last().filter(|s| s.t >= min_t)
}

impl<'a, S: SeriesSource + ?Sized> Evaluator<'a, S> {
    /// The newest sample of each series within the lookback window
    /// `(ref - lookback, ref]`, unless that sample is a staleness marker.
    pub(crate) fn eval_vector_selector(&self, vs: &VectorSelector, t: i64) -> Vec<ESample> {
        let ref_t = self.ref_time(t, &vs.at, &vs.offset);
        let series = self.selected(vs);
        let mut out = Vec::with_capacity(series.len());
        for s in series.iter() {
            if let Some(last) = last_in(s.samples, ref_t - self.lookback + 1, ref_t) {
                if !is_stale(last.v) {
                    out.push(ESample {
                        labels: s.labels.clone(),
                        t: last.t,
                        v: last.v,
                        drop_name: false,
                    });
                }
            }
        }
        out
    }

    /// The samples of each series in `(ref - range, ref]`, staleness markers
    /// removed; also returns that window.
    pub(crate) fn eval_matrix_selector(
        &self,
        ms: &MatrixSelector,
        t: i64,
    ) -> (Vec<ESeries>, i64, i64) {
        let vs = &ms.vs;
        let ref_t = self.ref_time(t, &vs.at, &vs.offset);
        let range_start = ref_t - ms_of_duration(&ms.range);
        let series = self.selected(vs);
        let mut out = Vec::new();
        for s in series.iter() {
            let points: Vec<crate::store::Point> = window(s.samples, range_start + 1, ref_t)
                .iter()
                .filter(|s| !is_stale(s.v))
                .copied()
                .collect();
            if !points.is_empty() {
                out.push(ESeries {
                    labels: s.labels.clone(),
                    points,
                    drop_name: false,
                });
            }
        }
        (out, range_start, ref_t)
    }

    /// Calls `f` with each series' samples in `(ref - range, ref]` (stale
    /// markers removed) and that window, borrowing the source's slices
    /// unless markers must be filtered out.
    pub(crate) fn for_each_matrix_window(
        &self,
        ms: &MatrixSelector,
        t: i64,
        mut f: impl FnMut(&crate::labels::Labels, &[crate::store::Point], (i64, i64)),
    ) {
        let vs = &ms.vs;
        let ref_t = self.ref_time(t, &vs.at, &vs.offset);
        let range_start = ref_t - ms_of_duration(&ms.range);
        let range = (range_start, ref_t);
        for s in self.selected(vs).iter() {
            let w = window(s.samples, range_start + 1, ref_t);
            if w.is_empty() {
                continue;
            }
            if w.iter().any(|x| is_stale(x.v)) {
                let fresh: Vec<crate::store::Point> =
                    w.iter().filter(|x| !is_stale(x.v)).copied().collect();
                if !fresh.is_empty() {
                    f(s.labels, &fresh, range);
                }
            } else {
                f(s.labels, w, range);
            }
        }
    }

    /// The series a selector matches, fetched once per query (all their
    /// samples, as slices) so each step of a range query or subquery only
    /// binary-searches its window.
    fn selected(&self, vs: &VectorSelector) -> Rc<Vec<SeriesView<'a>>> {
        let key = vs as *const VectorSelector as usize;
        if let Some(hit) = self.selections.borrow().get(&key) {
            return Rc::clone(hit);
        }
        let mut sets = super::selector_alternatives(vs);
        let views = if sets.len() == 1 {
            let only = sets.pop().unwrap_or_default();
            self.source.select(&only, i64::MIN, i64::MAX)
        } else {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for alt in &sets {
                for s in self.source.select(alt, i64::MIN, i64::MAX) {
                    if seen.insert(s.labels) {
                        out.push(s);
                    }
                }
            }
            out
        };
        let views = Rc::new(views);
        self.selections.borrow_mut().insert(key, Rc::clone(&views));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::{last_in, window};
    use crate::store::Point;

    fn series(n: i64) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                t: i * 10,
                v: i as f64,
            })
            .collect()
    }

    #[test]
    fn window_matches_a_plain_filter_for_short_and_long_ranges() {
        let s = series(200);
        for (min_t, max_t) in [
            (0, 1990),
            (1500, 1990),
            (-5, 3000),
            (15, 25),
            (1000, 1500),
            (2000, 3000),
            (500, 100),
        ] {
            let expected: Vec<i64> = s
                .iter()
                .filter(|x| x.t >= min_t && x.t <= max_t)
                .map(|x| x.t)
                .collect();
            let got: Vec<i64> = window(&s, min_t, max_t).iter().map(|x| x.t).collect();
            assert_eq!(got, expected, "window [{min_t}, {max_t}]");
        }
    }

    #[test]
    fn last_in_finds_the_newest_sample_inside_the_bounds() {
        let s = series(10);
        assert_eq!(last_in(&s, 0, 95).map(|x| x.t), Some(90));
        assert_eq!(last_in(&s, 0, 1000).map(|x| x.t), Some(90));
        assert_eq!(last_in(&s, 91, 1000), None);
        assert_eq!(last_in(&s, -10, -1), None);
    }
}
