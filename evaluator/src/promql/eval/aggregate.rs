//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, …)
//! with `by`/`without` grouping.

use std::collections::HashMap;

use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::grouping::{GroupIndex, Grouping};
use super::stats::{format_float, mean, quantile, variance, KahanSum};
use super::{ESample, Evaluator, Val};
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::{PromqlError, SeriesSource};

/// The grouping an aggregation's `by`/`without` clause asks for.
fn grouping(modifier: Option<&LabelModifier>) -> Grouping<'_> {
    match modifier {
        Some(LabelModifier::Include(by)) => Grouping::By(&by.labels),
        Some(LabelModifier::Exclude(without)) => Grouping::Without(&without.labels),
        None => Grouping::By(&[]),
    }
}

/// Whether `name` is a valid Prometheus label name.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<S: SeriesSource + ?Sized> Evaluator<'_, S> {
    pub(crate) fn eval_aggregate(&self, a: &AggregateExpr, t: i64) -> Result<Val, PromqlError> {
        let op = a.op.id();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        let Val::Vector(mut input) = self.eval(&a.expr, t)? else {
            return Err(PromqlError::eval("aggregation needs an instant vector"));
        };
        let modifier = a.modifier.as_ref();
        // Only `by (__name__)` can see a pending name drop; every other
        // grouping ignores the name. With immediate removal the name is
        // already gone; with delayed removal it still partitions the groups
        // and the pending drop is passed on to the result.
        let by_name = matches!(modifier, Some(LabelModifier::Include(by)) if by.labels.iter().any(|n| n == METRIC_NAME));
        if by_name && !self.delayed_name_removal {
            for s in input.iter_mut() {
                if s.drop_name {
                    s.labels.remove(METRIC_NAME);
                    s.drop_name = false;
                }
            }
        }
        let scalar_param = |what: &str| -> Result<f64, PromqlError> {
            match &param {
                Some(Val::Scalar(v)) => Ok(*v),
                _ => Err(PromqlError::eval(format!(
                    "{what} needs a scalar parameter"
                ))),
            }
        };

        if op == token::T_TOPK || op == token::T_BOTTOMK {
            let k = scalar_param("topk/bottomk")?;
            if k.is_nan() {
                return Err(PromqlError::eval("Parameter value is NaN"));
            }
            return Ok(Val::Vector(top_k(
                input,
                k,
                op == token::T_TOPK,
                modifier,
                t,
            )));
        }
        if op == token::T_COUNT_VALUES {
            let Some(Val::Str(label)) = &param else {
                return Err(PromqlError::eval("count_values needs a string parameter"));
            };
            if !valid_label_name(label) {
                return Err(PromqlError::eval(format!("invalid label name {label:?}")));
            }
            let mut counts: Vec<(Labels, f64)> = Vec::new();
            let mut index: HashMap<Labels, usize> = HashMap::new();
            let g_of = grouping(modifier);
            for s in &input {
                let mut g = g_of.key_labels(&s.labels);
                g.set(label, &format_float(s.v));
                let i = *index.entry(g.clone()).or_insert_with(|| {
                    counts.push((g, 0.0));
                    counts.len() - 1
                });
                counts[i].1 += 1.0;
            }
            return Ok(Val::Vector(
                counts
                    .into_iter()
                    .map(|(labels, v)| ESample {
                        labels,
                        t,
                        v,
                        drop_name: false,
                    })
                    .collect(),
            ));
        }

        // Every group's values, in input order, in one buffer: group `g`
        // owns `values[start..start + count]` (no allocation per group).
        let mut index: GroupIndex<'_, (usize, usize, bool)> = GroupIndex::new(grouping(modifier));
        let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
        for s in &input {
            let (g, _) = index.entry_index(&s.labels, || (0, 0, false));
            let group = &mut index.groups[g].1;
            group.1 += 1;
            group.2 |= s.drop_name && by_name;
            group_of.push(g);
        }
        let mut next_free = 0;
        for (_, (start, count, _)) in index.groups.iter_mut() {
            *start = next_free;
            next_free += *count;
        }
        let mut values = vec![0.0; input.len()];
        let mut filled: Vec<usize> = index
            .groups
            .iter()
            .map(|(_, (start, _, _))| *start)
            .collect();
        for (s, g) in input.iter().zip(&group_of) {
            values[filled[*g]] = s.v;
            filled[*g] += 1;
        }
        let g = index.grouping();
        let groups = index
            .groups
            .into_iter()
            .map(|(rep, (start, count, drop_name))| {
                (g.key_labels(&rep), start..start + count, drop_name)
            });
        let phi = if op == token::T_QUANTILE {
            let phi = scalar_param("quantile")?;
            if !(0.0..=1.0).contains(&phi) {
                self.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    format_float(phi)
                ));
            }
            phi
        } else {
            0.0
        };
        let mut out = Vec::new();
        for (labels, range, drop_name) in groups {
            let values = &mut values[range];
            let v = match op {
                token::T_SUM => {
                    let mut k = KahanSum::default();
                    values.iter().for_each(|v| k.add(*v));
                    k.value()
                }
                token::T_AVG => mean(values.iter().copied()),
                token::T_COUNT => values.len() as f64,
                token::T_GROUP => 1.0,
                token::T_MIN => {
                    values
                        .iter()
                        .copied()
                        .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m })
                }
                token::T_MAX => {
                    values
                        .iter()
                        .copied()
                        .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m })
                }
                token::T_STDDEV => variance(values.iter().copied()).sqrt(),
                token::T_STDVAR => variance(values.iter().copied()),
                token::T_QUANTILE => quantile(phi, values),
                _ => {
                    return Err(PromqlError::Experimental(a.op.to_string()));
                }
            };
            out.push(ESample {
                labels,
                t,
                v,
                drop_name,
            });
        }
        Ok(Val::Vector(out))
    }
}

/// `topk`/`bottomk`: the k largest (smallest) samples per group, keeping
/// their labels; NaN ranks below every number for topk and above for bottomk.
fn top_k(
    input: Vec<ESample>,
    k: f64,
    top: bool,
    modifier: Option<&LabelModifier>,
    t: i64,
) -> Vec<ESample> {
    if k < 1.0 {
        return Vec::new();
    }
    let k = if k >= usize::MAX as f64 {
        usize::MAX
    } else {
        k as usize
    };
    let mut index: GroupIndex<'_, Vec<ESample>> = GroupIndex::new(grouping(modifier));
    for s in input {
        let labels = s.labels.clone();
        index.entry(&labels, Vec::new).0.push(s);
    }
    let groups = index.groups.into_iter().map(|(_, g)| g);
    let better = |a: f64, b: f64| -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Equal,
            (true, false) => Greater,
            (false, true) => Less,
            _ => {
                let o = a.partial_cmp(&b).unwrap_or(Equal);
                if top {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    };
    let mut out = Vec::new();
    for mut g in groups {
        g.sort_by(|a, b| better(a.v, b.v));
        g.truncate(k);
        for mut s in g {
            s.t = t;
            out.push(s);
        }
    }
    out
}
