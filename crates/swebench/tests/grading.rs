//! Grading as the harness grades: real fixture logs (tests/fixtures/logs) against chosen
//! FAIL_TO_PASS / PASS_TO_PASS lists, the log-level refusals of `get_logs_eval`, and the report's
//! JSON shape.

use ponder_swebench::grading::{
    APPLY_PATCH_FAIL, EvalType, Expected, LogProblem, RESET_FAILED, ResolvedStatus, TESTS_ERROR,
    TESTS_TIMEOUT, TestsStatus, grade, grade_instance, is_resolved, parse_test_exit_code,
    read_eval_log, resolve_case,
};
use ponder_swebench::logparse::{LogFormat, extract_test_output};
use ponder_swebench::{StatusMap, TestStatus};
use std::path::Path;

fn full_log(format: LogFormat, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(format.short_name())
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

fn status_map(format: LogFormat, file: &str) -> StatusMap {
    read_eval_log(&full_log(format, file), format).expect("fixture log is gradable")
}

fn list(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn graded(f2p: &[&str], p2p: &[&str], map: &StatusMap) -> TestsStatus {
    grade(&list(f2p), &list(p2p), map, EvalType::PassAndFail)
}

const FLASK_PASS_1: &str = "tests/test_config.py::test_config_from_pyfile";
const FLASK_PASS_2: &str = "tests/test_config.py::test_from_pyfile_weird_encoding[latin-1]";
const FLASK_PASS_3: &str = "tests/test_instance_config.py::test_installed_module_paths[True]";
const FLASK_FAILED: &str = "tests/test_config.py::test_config_from_mapping";
const FLASK_ERROR: &str = "tests/test_instance_config.py::test_explicit_instance_paths";
const FLASK_XFAIL: &str = "tests/test_instance_config.py::test_main_module_paths";

#[test]
fn all_expected_tests_pass_is_full() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let report = graded(&[FLASK_PASS_1, FLASK_PASS_2], &[FLASK_PASS_3], &map);
    assert_eq!(
        report.fail_to_pass.success,
        list(&[FLASK_PASS_1, FLASK_PASS_2])
    );
    assert!(report.fail_to_pass.failure.is_empty());
    assert_eq!(report.pass_to_pass.success, list(&[FLASK_PASS_3]));
    assert_eq!(report.resolution(), ResolvedStatus::Full);
    assert!(report.resolved());
    // Empty lists count as fully passing, as in the harness.
    assert_eq!(graded(&[], &[], &map).resolution(), ResolvedStatus::Full);
}

#[test]
fn some_fail_to_pass_failing_is_partial_and_all_failing_is_no() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let partial = graded(&[FLASK_PASS_1, FLASK_FAILED], &[FLASK_PASS_3], &map);
    assert_eq!(partial.fail_to_pass.failure, list(&[FLASK_FAILED]));
    assert_eq!(partial.fail_to_pass_rate(), 0.5);
    assert_eq!(partial.resolution(), ResolvedStatus::Partial);
    assert!(!partial.resolved());

    let none = graded(&[FLASK_FAILED, FLASK_ERROR], &[FLASK_PASS_3], &map);
    assert_eq!(
        none.fail_to_pass.failure,
        list(&[FLASK_FAILED, FLASK_ERROR])
    );
    assert_eq!(none.resolution(), ResolvedStatus::No);
}

#[test]
fn a_broken_pass_to_pass_test_means_no_even_with_all_fixes() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let report = graded(&[FLASK_PASS_1], &[FLASK_PASS_2, FLASK_ERROR], &map);
    assert_eq!(report.pass_to_pass.failure, list(&[FLASK_ERROR]));
    assert_eq!(report.pass_to_pass_rate(), 0.5);
    assert_eq!(report.resolution(), ResolvedStatus::No);
    let partial_but_broken = graded(&[FLASK_PASS_1, FLASK_FAILED], &[FLASK_ERROR], &map);
    assert_eq!(partial_but_broken.resolution(), ResolvedStatus::No);
}

#[test]
fn a_test_missing_from_the_log_counts_as_failed() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let missing = "tests/test_config.py::test_not_in_this_log";
    let report = graded(&[FLASK_PASS_1], &[missing], &map);
    assert_eq!(report.pass_to_pass.failure, list(&[missing]));
    assert_eq!(report.resolution(), ResolvedStatus::No);
    assert_eq!(
        graded(&[missing], &[], &map).fail_to_pass.failure,
        list(&[missing])
    );
}

#[test]
fn xfail_passes_both_ways_and_skipped_only_pass_to_pass() {
    let flask = status_map(LogFormat::Flask, "pytest_rA.log");
    assert_eq!(flask.get(FLASK_XFAIL), Some(&TestStatus::Xfail));
    let report = graded(&[FLASK_XFAIL], &[FLASK_XFAIL], &flask);
    assert_eq!(report.fail_to_pass.success, list(&[FLASK_XFAIL]));
    assert_eq!(report.pass_to_pass.success, list(&[FLASK_XFAIL]));

    let django = status_map(LogFormat::Django, "runtests.log");
    let skipped = "test_null_literal (db_functions.comparison.test_nullif.NullIfTests)";
    let passed = "test_basic (db_functions.comparison.test_nullif.NullIfTests)";
    assert_eq!(django.get(skipped), Some(&TestStatus::Skipped));
    // A skipped FAIL_TO_PASS test is not a fix...
    let report = graded(&[skipped], &[passed], &django);
    assert_eq!(report.fail_to_pass.failure, list(&[skipped]));
    assert_eq!(report.resolution(), ResolvedStatus::No);
    // ...and a skipped PASS_TO_PASS test is no regression.
    let report = graded(&[passed], &[skipped], &django);
    assert_eq!(report.pass_to_pass.success, list(&[skipped]));
    assert_eq!(report.resolution(), ResolvedStatus::Full);
}

#[test]
fn django_docstring_ids_grade_like_any_other() {
    let map = status_map(LogFormat::Django, "runtests.log");
    let report = graded(
        &["Timesince should work with both date objects (#9672)"],
        &["paragraph() generates a single paragraph."],
        &map,
    );
    assert_eq!(report.fail_to_pass.success.len(), 1);
    assert_eq!(report.pass_to_pass.failure.len(), 1);
}

#[test]
fn truncated_parametrized_ids_match_by_prefix_when_unambiguous() {
    // astropy: two ogip ids start "log(photon" and both passed.
    let astropy = status_map(LogFormat::Astropy, "pytest_rA_classic.log");
    let truncated = "astropy/units/tests/test_format.py::test_ogip_grammar_fail[log(photon";
    let (id, status) = resolve_case(truncated, &astropy).expect("prefix match");
    assert!(
        id.starts_with(truncated) && status == TestStatus::Passed,
        "{id}"
    );
    assert!(graded(&[truncated], &[], &astropy).resolved());

    // scikit-learn-15100 expects this id, cut at the space inside its parameter.
    let scikit = status_map(LogFormat::Scikit, "pytest_rA.log");
    let cut = "sklearn/feature_extraction/tests/test_text.py::test_callable_analyzer_error[file-AttributeError-'str'";
    assert!(graded(&[cut], &[], &scikit).resolved());

    // A balanced id never falls back to prefixes.
    let balanced = "astropy/units/tests/test_format.py::test_ogip_grammar_fail[log(photon /m**2]";
    assert_eq!(resolve_case(balanced, &astropy), None);
    assert_eq!(
        graded(&[balanced], &[], &astropy).resolution(),
        ResolvedStatus::No
    );

    // No match at all: failed.
    let unknown = "astropy/units/tests/test_format.py::test_nothing[abc";
    assert_eq!(
        graded(&[], &[unknown], &astropy).pass_to_pass.failure,
        list(&[unknown])
    );
}

#[test]
fn truncated_ids_with_disagreeing_matches_stay_failed() {
    let mut map = StatusMap::new();
    map.insert("t.py::f[a b-1]".into(), TestStatus::Passed);
    map.insert("t.py::f[a b-2]".into(), TestStatus::Failed);
    map.insert("t.py::g[x y-1]".into(), TestStatus::Passed);
    map.insert("t.py::g[x y-2]".into(), TestStatus::Xfail);
    map.insert("t.py::h[p q]".into(), TestStatus::Skipped);
    let report = graded(&["t.py::f[a", "t.py::g[x"], &["t.py::h[p"], &map);
    assert_eq!(report.fail_to_pass.failure, list(&["t.py::f[a"]));
    assert_eq!(
        report.fail_to_pass.success,
        list(&["t.py::g[x"]),
        "PASSED and XFAIL agree"
    );
    assert_eq!(
        report.pass_to_pass.success,
        list(&["t.py::h[p"]),
        "a skip keeps P2P"
    );
    assert_eq!(report.resolution(), ResolvedStatus::Partial);
}

#[test]
fn fail_only_counts_only_exact_failed_entries() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let missing = "tests/test_config.py::test_not_in_this_log";
    let report = grade(
        &list(&[FLASK_FAILED, FLASK_ERROR, missing]),
        &list(&[FLASK_PASS_1]),
        &map,
        EvalType::FailOnly,
    );
    assert_eq!(report.fail_to_pass.failure, list(&[FLASK_FAILED]));
    assert_eq!(report.fail_to_pass.success, list(&[FLASK_ERROR, missing]));
    assert!(!is_resolved(
        &list(&[FLASK_FAILED]),
        &[],
        &map,
        EvalType::FailOnly
    ));
}

#[test]
fn logs_with_failure_markers_or_without_output_markers_are_refused() {
    let log = full_log(LogFormat::Flask, "pytest_rA.log");
    assert!(read_eval_log(&log, LogFormat::Flask).is_ok());
    for marker in [APPLY_PATCH_FAIL, RESET_FAILED, TESTS_ERROR, TESTS_TIMEOUT] {
        let marked = format!("{marker}\n{log}");
        assert_eq!(
            read_eval_log(&marked, LogFormat::Flask),
            Err(LogProblem::FailureMarker(marker))
        );
    }
    let section = extract_test_output(&log).unwrap();
    assert_eq!(
        read_eval_log(section, LogFormat::Flask),
        Err(LogProblem::MissingMarkers)
    );
    let no_end = log.replace(">>>>> End Test Output", "");
    let err = read_eval_log(&no_end, LogFormat::Flask).unwrap_err();
    assert_eq!(err, LogProblem::MissingMarkers);
    assert!(err.to_string().contains(">>>>> Start Test Output"), "{err}");
}

#[test]
fn results_outside_the_markers_are_used_when_none_are_inside() {
    let log = "PASSED tests/a.py::t_out\n>>>>> Start Test Output\n>>>>> End Test Output\n";
    let map = read_eval_log(log, LogFormat::Pytest).unwrap();
    assert_eq!(map.get("tests/a.py::t_out"), Some(&TestStatus::Passed));
    // Results inside win; the outside ones are then not read.
    let log = "PASSED tests/a.py::t_out\n>>>>> Start Test Output\nFAILED tests/a.py::t_in\n>>>>> End Test Output\n";
    let map = read_eval_log(log, LogFormat::Pytest).unwrap();
    assert_eq!(map.len(), 1);
    // Nothing anywhere and no sign of a run: refused.
    let log = ">>>>> Start Test Output\nImportError: no module named x\n>>>>> End Test Output\n";
    assert_eq!(
        read_eval_log(log, LogFormat::Pytest),
        Err(LogProblem::NoResults)
    );
}

#[test]
fn a_recorded_exit_code_must_agree_with_the_log() {
    let body = ">>>>> Start Test Output\nPASSED tests/a.py::t\n>>>>> End Test Output\n";
    let forged = format!("{body}>>>>> Test Exit Code: 1\n");
    assert_eq!(parse_test_exit_code(&forged), Some(1));
    assert_eq!(
        read_eval_log(&forged, LogFormat::Pytest),
        Err(LogProblem::ExitCodeContradicts(1))
    );
    assert!(
        read_eval_log(
            &format!("{body}>>>>> Test Exit Code: 0\n"),
            LogFormat::Pytest
        )
        .is_ok()
    );
    assert!(read_eval_log(body, LogFormat::Pytest).is_ok());
    // A non-zero exit with a real failure in the log is an ordinary failing run.
    let failing = ">>>>> Start Test Output\nFAILED tests/a.py::t\n>>>>> End Test Output\n>>>>> Test Exit Code: 1\n";
    assert!(read_eval_log(failing, LogFormat::Pytest).is_ok());
    assert_eq!(
        parse_test_exit_code("x >>>>> Test Exit Code: 99999999999999999999"),
        Some(i64::MAX)
    );
}

#[test]
fn report_serializes_with_the_harness_keys() {
    let map = status_map(LogFormat::Flask, "pytest_rA.log");
    let report = graded(&[FLASK_PASS_1], &[FLASK_FAILED], &map);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "FAIL_TO_PASS": {"success": [FLASK_PASS_1], "failure": []},
            "PASS_TO_PASS": {"success": [], "failure": [FLASK_FAILED]},
            "FAIL_TO_FAIL": {"success": [], "failure": []},
            "PASS_TO_FAIL": {"success": [], "failure": []},
        })
    );
    assert_eq!(serde_json::from_value::<TestsStatus>(json).unwrap(), report);
    for (status, text) in [
        (ResolvedStatus::Full, "RESOLVED_FULL"),
        (ResolvedStatus::Partial, "RESOLVED_PARTIAL"),
        (ResolvedStatus::No, "RESOLVED_NO"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), text);
        assert_eq!(status.as_str(), text);
    }
    assert_eq!(
        serde_json::to_value(EvalType::FailOnly).unwrap(),
        "fail_only"
    );
}

#[test]
fn grading_an_instance_from_its_log() {
    let log = full_log(LogFormat::Sphinx, "tox.log");
    let f2p = list(&["tests/test_util_i18n.py::test_CatalogRepository"]);
    let p2p = list(&["tests/test_util_rst.py::test_escape"]);
    let expected = Expected {
        fail_to_pass: &f2p,
        pass_to_pass: &p2p,
        format: LogFormat::Sphinx,
        eval_type: EvalType::PassAndFail,
    };
    let report = grade_instance(Some("diff --git a/x b/x\n"), &log, expected);
    assert!(report.patch_exists && report.patch_successfully_applied && !report.resolved);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["patch_is_None"], false);
    assert_eq!(
        json["tests_status"]["PASS_TO_PASS"]["failure"][0],
        "tests/test_util_rst.py::test_escape"
    );

    let fixed = list(&["tests/test_util_i18n.py::test_format_date"]);
    let resolved = grade_instance(
        Some("p"),
        &log,
        Expected {
            pass_to_pass: &fixed,
            ..expected
        },
    );
    assert!(resolved.resolved);

    let no_patch = grade_instance(None, &log, expected);
    assert!(no_patch.patch_is_none && !no_patch.patch_exists && no_patch.tests_status.is_none());
    let refused = grade_instance(Some("p"), &format!("{APPLY_PATCH_FAIL}\n{log}"), expected);
    assert!(refused.patch_exists && !refused.patch_successfully_applied && !refused.resolved);
    assert!(
        serde_json::to_value(&refused)
            .unwrap()
            .get("tests_status")
            .is_none()
    );
}
