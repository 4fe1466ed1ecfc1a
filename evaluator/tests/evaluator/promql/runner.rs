//! The promqltest runner must fail cases whose results differ from the
//! script, and skip (never pass) native-histogram and experimental cases.

use vigil_evaluator::promql::promqltest::{parse_script, run_script, CaseOutcome};

fn outcomes(script: &str) -> Vec<CaseOutcome> {
    let commands = parse_script(script).expect("script parses");
    run_script(&commands)
        .cases
        .into_iter()
        .map(|(_, _, o)| o)
        .collect()
}

const LOAD: &str = "load 1m\n  metric{a=\"1\"} 1+1x10\n  metric{a=\"2\"} 5x10\n\n";

#[test]
fn matching_result_passes() {
    let got = outcomes(&format!(
        "{LOAD}eval instant at 2m metric\n  metric{{a=\"1\"}} 3\n  metric{{a=\"2\"}} 5\n"
    ));
    assert_eq!(got, [CaseOutcome::Passed]);
}

#[test]
fn wrong_value_fails() {
    let got = outcomes(&format!(
        "{LOAD}eval instant at 2m metric\n  metric{{a=\"1\"}} 4\n  metric{{a=\"2\"}} 5\n"
    ));
    assert!(matches!(got[0], CaseOutcome::Failed(_)), "{got:?}");
}

#[test]
fn missing_expected_series_fails() {
    let got = outcomes(&format!(
        "{LOAD}eval instant at 2m metric\n  metric{{a=\"1\"}} 3\n"
    ));
    assert!(matches!(got[0], CaseOutcome::Failed(_)), "{got:?}");
}

#[test]
fn wrong_range_point_fails() {
    let got = outcomes(&format!(
        "{LOAD}eval range from 0 to 2m step 1m metric{{a=\"1\"}}\n  metric{{a=\"1\"}} 1 2 4\n"
    ));
    assert!(matches!(got[0], CaseOutcome::Failed(_)), "{got:?}");
}

#[test]
fn expected_failure_that_succeeds_fails() {
    let got = outcomes(&format!("{LOAD}eval instant at 2m metric\n  expect fail\n"));
    assert!(matches!(got[0], CaseOutcome::Failed(_)), "{got:?}");
}

#[test]
fn native_histogram_and_experimental_cases_are_skipped() {
    let got = outcomes(
        "load 1m\n  hist {{schema:0 sum:1 count:1}}\n  floats 1\n\n\
         eval instant at 0m hist\n  {} 1\n\n\
         eval instant at 0m floats\n  floats 1\n\n\
         eval instant at 0m sort_by_label(floats, \"a\")\n  floats 1\n",
    );
    assert!(matches!(got[0], CaseOutcome::Skipped(_)), "{got:?}");
    assert_eq!(got[1], CaseOutcome::Passed);
    assert!(matches!(got[2], CaseOutcome::Skipped(_)), "{got:?}");
}
