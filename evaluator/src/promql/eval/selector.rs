//! Instant and range vector selectors: lookback, staleness, offset and `@`.

use promql_parser::label::Matcher;
use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::{ms_of_duration, ESample, ESeries, Evaluator};
use crate::promql::SeriesSource;
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

impl<S: SeriesSource + ?Sized> Evaluator<'_, S> {
    /// The newest sample of each series within the lookback window
    /// `(ref - lookback, ref]`, unless that sample is a staleness marker.
    pub(crate) fn eval_vector_selector(&self, vs: &VectorSelector, t: i64) -> Vec<ESample> {
        let ref_t = self.ref_time(t, &vs.at, &vs.offset);
        let matchers = matchers(vs);
        let mut out = Vec::new();
        for series in self.select_or(
            &matchers,
            &vs.matchers.or_matchers,
            ref_t - self.lookback + 1,
            ref_t,
        ) {
            if let Some(last) = series.samples.last() {
                if !is_stale(last.v) {
                    out.push(ESample {
                        labels: series.labels.clone(),
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
        let matchers = matchers(vs);
        let mut out = Vec::new();
        for series in self.select_or(&matchers, &vs.matchers.or_matchers, range_start + 1, ref_t) {
            let points: Vec<(i64, f64)> = series
                .samples
                .iter()
                .filter(|s| !is_stale(s.v))
                .map(|s| (s.t, s.v))
                .collect();
            if !points.is_empty() {
                out.push(ESeries {
                    labels: series.labels.clone(),
                    points,
                    drop_name: false,
                });
            }
        }
        (out, range_start, ref_t)
    }

    /// Selects with the main matchers, or the union over `or` alternatives.
    fn select_or(
        &self,
        matchers: &[Matcher],
        or_matchers: &[Vec<Matcher>],
        min_t: i64,
        max_t: i64,
    ) -> Vec<crate::promql::SeriesView<'_>> {
        if or_matchers.is_empty() {
            return self.source.select(matchers, min_t, max_t);
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for alt in or_matchers {
            for s in self.source.select(alt, min_t, max_t) {
                if seen.insert(s.labels) {
                    out.push(s);
                }
            }
        }
        out
    }
}
