//! Binary operators: arithmetic, comparison (with and without `bool`) and
//! set operators, with `on`/`ignoring` and `group_left`/`group_right`.

use std::collections::HashSet;

use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::grouping::{GroupIndex, Grouping};
use super::{ESample, Evaluator, Val};
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::{PromqlError, SeriesSource};

/// Applies an arithmetic or comparison operator to two floats; for a
/// comparison the second value says whether the pair is kept.
fn apply(op: TokenType, l: f64, r: f64) -> (f64, bool) {
    match op.id() {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn is_comparison(op: TokenType) -> bool {
    op.is_comparison_operator()
}

/// Arithmetic drops the metric name; comparisons without `bool` keep it.
fn drops_name(op: TokenType, return_bool: bool) -> bool {
    !is_comparison(op) || return_bool
}

/// The vector-matching key: `on(...)` labels, or all labels but the
/// `ignoring(...)` ones and the metric name.
fn matching_grouping(matching: Option<&LabelModifier>) -> Grouping<'_> {
    match matching {
        Some(LabelModifier::Include(on)) => Grouping::By(&on.labels),
        Some(LabelModifier::Exclude(ign)) => Grouping::Without(&ign.labels),
        None => Grouping::Without(&[]),
    }
}

/// Set of the matching keys present in `samples`.
fn key_set<'m>(samples: &[ESample], matching: Option<&'m LabelModifier>) -> GroupIndex<'m, ()> {
    let mut index = GroupIndex::new(matching_grouping(matching));
    for s in samples {
        index.entry(&s.labels, || ());
    }
    index
}

/// Whether a matching clause names `__name__`.
fn mentions_name(m: &promql_parser::parser::BinModifier) -> bool {
    let in_matching = m
        .matching
        .as_ref()
        .is_some_and(|lm| lm.labels().labels.iter().any(|n| n == METRIC_NAME));
    let in_include = m
        .card
        .labels()
        .is_some_and(|ls| ls.labels.iter().any(|n| n == METRIC_NAME));
    in_matching || in_include
}

impl<S: SeriesSource + ?Sized> Evaluator<'_, S> {
    /// Rewrites the labels of samples whose name already counts as removed.
    fn apply_pending_name_drops(&self, samples: &mut [ESample]) {
        for s in samples.iter_mut() {
            if self.name_is_gone(s) {
                s.labels.remove(METRIC_NAME);
                s.drop_name = false;
            }
        }
    }

    pub(crate) fn eval_binary(&self, b: &BinaryExpr, t: i64) -> Result<Val, PromqlError> {
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let op = b.op;
        let return_bool = b.return_bool();
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let (v, keep) = apply(op, l, r);
                if is_comparison(op) {
                    Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Val::Scalar(v))
                }
            }
            (Val::Vector(vs), Val::Scalar(r)) => {
                Ok(Val::Vector(scalar_op(op, vs, r, false, return_bool, t)))
            }
            (Val::Scalar(l), Val::Vector(vs)) => {
                Ok(Val::Vector(scalar_op(op, vs, l, true, return_bool, t)))
            }
            (Val::Vector(mut l), Val::Vector(mut r)) => {
                let modifier = b.modifier.as_ref();
                if modifier.is_some_and(mentions_name) {
                    // `on(__name__)`/`group_left(__name__)` read the name.
                    self.apply_pending_name_drops(&mut l);
                    self.apply_pending_name_drops(&mut r);
                }
                let matching = modifier.and_then(|m| m.matching.as_ref());
                let card = modifier
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                match op.id() {
                    token::T_LAND => Ok(Val::Vector(and(l, r, matching))),
                    token::T_LOR => Ok(Val::Vector(or(l, r, matching))),
                    token::T_LUNLESS => Ok(Val::Vector(unless(l, r, matching))),
                    _ => Ok(Val::Vector(vector_op(
                        op,
                        l,
                        r,
                        matching,
                        &card,
                        return_bool,
                        t,
                    )?)),
                }
            }
            _ => Err(PromqlError::eval(format!(
                "binary operator {op} is not defined between these operand types"
            ))),
        }
    }
}

fn scalar_op(
    op: TokenType,
    vs: Vec<ESample>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
    t: i64,
) -> Vec<ESample> {
    let mut out = Vec::with_capacity(vs.len());
    for mut s in vs {
        let (l, r) = if scalar_left {
            (scalar, s.v)
        } else {
            (s.v, scalar)
        };
        let (mut v, keep) = apply(op, l, r);
        if is_comparison(op) {
            // The vector's own value is kept even when it is on the right.
            v = s.v;
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
        }
        s.v = v;
        s.t = t;
        if drops_name(op, return_bool) {
            s.drop_name = true;
        }
        out.push(s);
    }
    out
}

fn and(l: Vec<ESample>, r: Vec<ESample>, matching: Option<&LabelModifier>) -> Vec<ESample> {
    let keys = key_set(&r, matching);
    l.into_iter()
        .filter(|s| keys.find(&s.labels).is_some())
        .collect()
}

fn or(l: Vec<ESample>, r: Vec<ESample>, matching: Option<&LabelModifier>) -> Vec<ESample> {
    let keys = key_set(&l, matching);
    let mut out = l;
    out.extend(r.into_iter().filter(|s| keys.find(&s.labels).is_none()));
    out
}

fn unless(l: Vec<ESample>, r: Vec<ESample>, matching: Option<&LabelModifier>) -> Vec<ESample> {
    let keys = key_set(&r, matching);
    l.into_iter()
        .filter(|s| keys.find(&s.labels).is_none())
        .collect()
}

fn vector_op(
    op: TokenType,
    lhs: Vec<ESample>,
    rhs: Vec<ESample>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
    t: i64,
) -> Result<Vec<ESample>, PromqlError> {
    // The "many" side drives the loop; `group_right` swaps the roles.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let include: Vec<String> = match card {
        VectorMatchCardinality::ManyToOne(ls) | VectorMatchCardinality::OneToMany(ls) => {
            ls.labels.clone()
        }
        _ => Vec::new(),
    };
    let one_to_one = matches!(
        card,
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany
    );

    let grouping = matching_grouping(matching);
    let mut one_by_key: GroupIndex<'_, &ESample> = GroupIndex::new(grouping);
    for s in &one {
        let (_, created) = one_by_key.entry(&s.labels, || s);
        if !created {
            let side = if swapped { "left" } else { "right" };
            return Err(PromqlError::eval(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}];many-to-many matching not allowed: matching labels must be unique on one side",
                grouping.key_labels(&s.labels),
                s.labels
            )));
        }
    }
    // For one-to-one matching, which "one" groups were already used.
    let mut matched = vec![false; one_by_key.groups.len()];
    let mut produced: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for m in &many {
        let Some(i) = one_by_key.find(&m.labels) else {
            continue;
        };
        let o = one_by_key.groups[i].1;
        if one_to_one {
            if matched[i] {
                return Err(PromqlError::eval(format!(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right); found duplicate series for the match group {}",
                    grouping.key_labels(&m.labels)
                )));
            }
            matched[i] = true;
        }
        let (l, r) = if swapped { (o.v, m.v) } else { (m.v, o.v) };
        let (mut v, keep) = apply(op, l, r);
        if is_comparison(op) {
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
        }
        let mut labels = m.labels.clone();
        let mut drop_name = m.drop_name;
        if drops_name(op, return_bool) {
            drop_name = true;
        }
        if one_to_one {
            labels = match matching {
                Some(LabelModifier::Include(on)) => labels.keep_names(&on.labels),
                Some(LabelModifier::Exclude(ign)) => labels.drop_names(&ign.labels),
                None => labels,
            };
        }
        for name in &include {
            match o.labels.get(name) {
                Some(v) => labels.set(name, v),
                None => labels.remove(name),
            }
        }
        // One-to-one results are unique by construction (each "one" side
        // matched once); many-to-one ones are checked, judged without a
        // name whose removal is delayed.
        if !one_to_one {
            let key = if drop_name {
                let mut key = labels.clone();
                key.remove(METRIC_NAME);
                key
            } else {
                labels.clone()
            };
            if !produced.insert(key) {
                return Err(PromqlError::eval(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        out.push(ESample {
            labels,
            t,
            v,
            drop_name,
        });
    }
    Ok(out)
}
