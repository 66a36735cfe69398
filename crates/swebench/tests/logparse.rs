//! The log parsers on real test-runner output (tests/fixtures/logs, made by
//! scripts/capture-logs.sh), on the dataset's expected test ids, and on arbitrary text.
//!
//! Every id and status asserted below was read off the fixture log itself.

use ponder_swebench::logparse::{LogFormat, ParserKind, extract_test_output};
use ponder_swebench::{StatusMap, TestStatus};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

use TestStatus::{Error, Failed, Passed, Skipped, Xfail};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs")
}

/// The fixture's full log, its extracted test output parsed with `format`.
fn parse_fixture(format: LogFormat, file: &str) -> (String, StatusMap) {
    let path = fixtures().join(format.short_name()).join(file);
    let log = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    let output = extract_test_output(&log)
        .unwrap_or_else(|| panic!("fixture {} lacks the output markers", path.display()));
    let map = format.parse(output);
    (log, map)
}

#[track_caller]
fn assert_statuses(map: &StatusMap, expected: &[(&str, TestStatus)]) {
    for (id, status) in expected {
        assert_eq!(map.get(*id), Some(status), "status of {id:?}");
    }
}

fn count(map: &StatusMap, status: TestStatus) -> usize {
    map.values().filter(|s| **s == status).count()
}

#[test]
fn names_repos_and_kinds() {
    for format in LogFormat::ALL {
        assert_eq!(format.as_str().parse::<LogFormat>(), Ok(format));
        assert_eq!(format.short_name().parse::<LogFormat>(), Ok(format));
        assert_eq!(format.to_string(), format.as_str());
        let json = serde_json::to_string(&format).unwrap();
        assert_eq!(json, format!("\"{}\"", format.as_str()));
        assert_eq!(serde_json::from_str::<LogFormat>(&json).unwrap(), format);
    }
    assert_eq!(
        LogFormat::for_repo("django/django"),
        Some(LogFormat::Django)
    );
    assert_eq!(
        LogFormat::for_repo("scikit-learn/scikit-learn"),
        Some(LogFormat::Scikit)
    );
    assert_eq!(
        LogFormat::for_repo("psf/requests"),
        Some(LogFormat::Requests)
    );
    assert_eq!(LogFormat::for_repo("octo/cat"), None);
    let err = "parse_log_cargo".parse::<LogFormat>().unwrap_err();
    assert!(err.to_string().contains("parse_log_cargo"), "{err}");
    assert_eq!(LogFormat::Flask.kind(), ParserKind::Pytest);
    assert_eq!(LogFormat::Xarray.kind(), ParserKind::Pytest);
    assert_eq!(LogFormat::Pylint.kind(), ParserKind::PytestOptions);
    assert_eq!(LogFormat::Requests.kind(), ParserKind::PytestOptions);
    assert_eq!(LogFormat::Astropy.kind(), ParserKind::PytestV2);
    assert_eq!(LogFormat::Sphinx.kind(), ParserKind::PytestV2);
    assert_eq!(LogFormat::Scikit.kind(), ParserKind::PytestV2);
}

/// Every dataset row's `log_parser` and `repo` map to the same format.
#[test]
fn dataset_parser_names_match_repos() {
    let Some(rows) = lite_rows() else { return };
    for row in &rows {
        let named: LogFormat = row["log_parser"].as_str().unwrap().parse().unwrap();
        let repo = row["repo"].as_str().unwrap();
        assert_eq!(LogFormat::for_repo(repo), Some(named), "{repo}");
    }
}

#[test]
fn extraction_follows_the_harness_cut() {
    let log =
        "setup\n+ : '>>>>> Start Test Output'\nPASSED a\n+ : '>>>>> End Test Output'\nafter\n";
    assert_eq!(extract_test_output(log), Some("'\nPASSED a\n+ : '"));
    assert_eq!(extract_test_output("PASSED a\n"), None);
    assert_eq!(
        extract_test_output(">>>>> Start Test Output\nPASSED a\n"),
        None
    );
    assert_eq!(
        extract_test_output("PASSED a\n>>>>> End Test Output\n"),
        None
    );
    // A second start marker ends the section, as `split(START)[1]` does.
    let twice = ">>>>> Start Test Output\nA\n>>>>> Start Test Output\nB\n>>>>> End Test Output";
    assert_eq!(extract_test_output(twice), Some("\nA\n"));
    // An end marker only before the start: the section runs to the end of the log.
    let early_end = ">>>>> End Test Output\n>>>>> Start Test Output\nC\n";
    assert_eq!(extract_test_output(early_end), Some("\nC\n"));
    // Missing markers therefore parse to nothing.
    let section = extract_test_output("PASSED tests/a.py::t\n").unwrap_or("");
    assert!(LogFormat::Pytest.parse(section).is_empty());
}

#[test]
fn every_fixture_has_its_markers_and_results() {
    for format in LogFormat::ALL {
        let dir = fixtures().join(format.short_name());
        let mut logs = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.len() < 30_000, "{} is over 30 KB", path.display());
                let output = extract_test_output(&text).expect("markers");
                assert!(!format.parse(output).is_empty(), "{}", path.display());
                logs += 1;
            }
        }
        assert!(logs > 0, "no fixture for {format}");
    }
}

#[test]
fn django_runtests_verbose() {
    let (_, map) = parse_fixture(LogFormat::Django, "runtests.log");
    assert_statuses(
        &map,
        &[
            (
                "test_depth (utils_tests.test_timesince.TimesinceTests)",
                Passed,
            ),
            (
                "test_basic (db_functions.comparison.test_nullif.NullIfTests)",
                Passed,
            ),
            // Tests with a docstring are known by its first line.
            (
                "Timesince should work with both date objects (#9672)",
                Passed,
            ),
            (
                "words(n) has n words when n is greater than len(WORDS).",
                Passed,
            ),
            ("paragraph() generates a single paragraph.", Failed),
            ("A sentence starts with a capital letter.", Failed),
            (
                "words(n) returns n + 19 words, even if n is negative.",
                Error,
            ),
            // `FAIL: test_paragraph (...)` and `ERROR: test_negative_words (...)` headers.
            ("test_paragraph", Failed),
            ("test_negative_words", Error),
            (
                "test_null_literal (db_functions.comparison.test_nullif.NullIfTests)",
                Skipped,
            ),
            (
                "test_sql_flush (backends.mysql.test_operations.MySQLOperationsTests)",
                Skipped,
            ),
        ],
    );
    // The id line of a docstring test carries no verdict.
    assert!(
        !map.contains_key("test_both_date_objects (utils_tests.test_timesince.TimesinceTests)")
    );
    assert_eq!(map.len(), 39);
    assert_eq!(
        (
            count(&map, Failed),
            count(&map, Error),
            count(&map, Skipped)
        ),
        (8, 2, 3)
    );
}

#[test]
fn sympy_bin_test_verbose() {
    let (_, map) = parse_fixture(LogFormat::Sympy, "bin_test.log");
    assert_statuses(
        &map,
        &[
            ("test_shape", Passed),
            ("test_tensorflow_printing", Passed),
            ("test_decompogen", Passed),
            ("test_on_diag", Failed),
            ("test_slice_of_slice", Error),
            // The `____ path:name ____` failure headers.
            (
                "sympy/matrices/expressions/tests/test_slice.py:test_on_diag",
                Failed,
            ),
            (
                "sympy/matrices/expressions/tests/test_slice.py:test_slice_of_slice",
                Failed,
            ),
        ],
    );
    // Not read, as in the harness: expected failures (f), skips (s), and each file's last test,
    // whose line ends in the file's [OK]/[FAIL] column.
    for unread in [
        "test_symmetry",
        "test_tensorflow_relational",
        "test_negative_index",
        "test_compogen",
    ] {
        assert!(!map.contains_key(unread), "{unread}");
    }
    assert_eq!(map.len(), 14);
}

#[test]
fn flask_pytest_ra() {
    let (_, map) = parse_fixture(LogFormat::Flask, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            ("tests/test_config.py::test_config_from_pyfile", Passed),
            (
                "tests/test_config.py::test_from_pyfile_weird_encoding[iso-8859-15]",
                Passed,
            ),
            ("tests/test_config.py::test_config_from_mapping", Failed),
            (
                "tests/test_instance_config.py::test_egg_installed_paths",
                Failed,
            ),
            (
                "tests/test_instance_config.py::test_explicit_instance_paths",
                Error,
            ),
            (
                "tests/test_instance_config.py::test_main_module_paths",
                Xfail,
            ),
        ],
    );
    // XPASS is no status of the harness's.
    assert!(!map.contains_key("tests/test_instance_config.py::test_uninstalled_module_paths"));
    assert_eq!(map.len(), 25);
}

#[test]
fn xarray_pytest_ra() {
    let (_, map) = parse_fixture(LogFormat::Xarray, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            ("xarray/tests/test_dtypes.py::test_inf[(1+1j)]", Passed),
            ("xarray/tests/test_options.py::test_nested_options", Failed),
            ("xarray/tests/test_options.py::test_display_width", Error),
        ],
    );
    // `SKIPPED [1] file:line: reason` is a summary, not a test.
    assert!(map.keys().all(|id| !id.starts_with('[')));
    assert_eq!(count(&map, Skipped), 0);
    assert_eq!(map.len(), 57);
}

#[test]
fn pytest_pytest_ra() {
    let (_, map) = parse_fixture(LogFormat::Pytest, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            ("testing/python/approx.py::TestApprox::test_bool", Passed),
            (
                "testing/python/approx.py::TestApprox::test_comparison_operator_type_error[<=]",
                Passed,
            ),
            (
                "testing/python/approx.py::TestApprox::test_repr_string",
                Failed,
            ),
            (
                "testing/python/approx.py::TestApprox::test_repr_complex_numbers",
                Error,
            ),
            // A pytester run's own summary, printed in the PASSES section, is read too.
            ("test_unicode_plus_minus.py::test_foo", Failed),
        ],
    );
    assert_eq!(map.len(), 60);
}

#[test]
fn requests_options_are_normalised() {
    let (_, map) = parse_fixture(LogFormat::Requests, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            (
                "tests/test_structures.py::TestCaseInsensitiveDict::test_delitem[aCcEpT]",
                Passed,
            ),
            ("tests/test_utils.py::TestSuperLen::test_string", Failed),
            (
                "tests/test_structures.py::TestCaseInsensitiveDict::test_list",
                Error,
            ),
            // `[/tmp/.../tests/test_utils.py]` keeps only the last path component.
            (
                "tests/test_utils.py::TestExtractZippedPaths::test_unzipped_paths_unchanged[/test_utils.py]",
                Passed,
            ),
            (
                "tests/test_utils.py::TestExtractZippedPaths::test_unzipped_paths_unchanged[/]",
                Passed,
            ),
            // `//host` options are no paths.
            (
                "tests/test_utils.py::test_prepend_scheme_if_needed[//example.com/path-http://example.com/path]",
                Passed,
            ),
            // Ids with spaces are cut at the first one.
            (
                "tests/test_utils.py::TestContentEncodingDetection::test_pragmas[<meta",
                Passed,
            ),
        ],
    );
    assert!(
        map.keys()
            .all(|id| !id.contains("/tmp/ponder-capture-logs"))
    );
    assert_eq!(map.len(), 215);
}

#[test]
fn pylint_options_format() {
    let (_, map) = parse_fixture(LogFormat::Pylint, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            (
                "tests/checkers/unittest_misc.py::TestFixme::test_absent_codetag",
                Passed,
            ),
            (
                "tests/test_import_graph.py::test_dependencies_graph[tests/regrtest_data/foo.dot]",
                Passed,
            ),
            (
                "tests/checkers/unittest_misc.py::TestFixme::test_fixme_with_message",
                Failed,
            ),
            (
                "tests/test_import_graph.py::test_missing_graphviz[graph.png]",
                Error,
            ),
        ],
    );
    assert_eq!(map.len(), 16);
}

#[test]
fn matplotlib_mouse_buttons_become_numbers() {
    let (log, map) = parse_fixture(LogFormat::Matplotlib, "pytest_rA.log");
    assert!(
        log.contains("test_interactive_colorbar[zoom-MouseButton.LEFT-expected0-vertical-imshow]")
    );
    assert_statuses(
        &map,
        &[
            (
                "matplotlib/tests/test_backend_bases.py::test_interactive_colorbar[zoom-1-expected0-vertical-imshow]",
                Passed,
            ),
            (
                "matplotlib/tests/test_backend_bases.py::test_interactive_colorbar[pan-3-expected3-horizontal-contourf]",
                Passed,
            ),
            (
                "matplotlib/tests/test_backend_bases.py::test_draw[pdf]",
                Passed,
            ),
            (
                "matplotlib/tests/test_backend_bases.py::test_get_default_filename",
                Failed,
            ),
        ],
    );
    assert!(map.keys().all(|id| !id.contains("MouseButton")));
    assert_eq!(map.len(), 55);
}

#[test]
fn seaborn_reads_passes_and_failures_only() {
    let (log, map) = parse_fixture(LogFormat::Seaborn, "pytest_rA.log");
    assert!(log.contains("SKIPPED [1] tests/test_rcmod.py:277"));
    assert_statuses(
        &map,
        &[
            ("tests/test_algorithms.py::test_bootstrap", Passed),
            ("tests/test_algorithms.py::test_bootstrap_seed", Failed),
            ("tests/test_algorithms.py::test_seed_new", Failed),
        ],
    );
    assert_eq!((map.len(), count(&map, Failed)), (35, 4));
}

#[test]
fn sphinx_tox_output_with_colour_codes() {
    let (log, map) = parse_fixture(LogFormat::Sphinx, "tox.log");
    assert!(log.contains("\u{1b}[31mFAILED\u{1b}[0m tests/test_util_rst.py::\u{1b}[1mtest_escape"));
    assert_statuses(
        &map,
        &[
            ("tests/test_util_i18n.py::test_CatalogRepository", Passed),
            ("tests/test_ext_math.py::test_imgmath_numfig_html", Passed),
            // The ` - AssertionError: ...` suffix is not part of the id.
            ("tests/test_util_rst.py::test_escape", Failed),
            ("tests/test_util_rst.py::test_heading", Error),
        ],
    );
    assert!(
        map.keys()
            .all(|id| !id.contains('\u{1b}') && !id.contains("[1m"))
    );
    assert_eq!(map.len(), 18);
}

#[test]
fn astropy_classic_verbose_lines_keep_spaces() {
    let (_, map) = parse_fixture(LogFormat::Astropy, "pytest_rA_classic.log");
    assert_statuses(
        &map,
        &[
            (
                "astropy/io/ascii/tests/test_qdp.py::test_read_example",
                Passed,
            ),
            (
                "astropy/units/tests/test_format.py::test_ogip_grammar_fail[log(photon /m**2 /s /Hz)]",
                Passed,
            ),
            (
                "astropy/units/tests/test_format.py::test_ogip_grammar_fail[sin( /pixel /s)]",
                Passed,
            ),
            ("astropy/io/ascii/tests/test_qdp.py::test_roundtrip", Failed),
            (
                "astropy/io/ascii/tests/test_qdp.py::test_roundtrip_example",
                Error,
            ),
        ],
    );
    assert_eq!(map.len(), 75);
}

#[test]
fn scikit_pytest_ra() {
    let (_, map) = parse_fixture(LogFormat::Scikit, "pytest_rA.log");
    assert_statuses(
        &map,
        &[
            (
                "sklearn/tests/test_isotonic.py::test_check_increasing_up",
                Failed,
            ),
            (
                "sklearn/feature_extraction/tests/test_text.py::test_callable_analyzer_error[file-AttributeError-'str' object has no attribute 'read'-CountVectorizer]",
                Passed,
            ),
        ],
    );
    assert_eq!((map.len(), count(&map, Failed)), (66, 7));
}

/// The same pytest summary read by each pytest behaviour, to pin where they differ.
#[test]
fn pytest_behaviours_differ_as_the_harness_does() {
    let log = "PASSED t.py::f[a b]\nFAILED t.py::g[x] - assert 0\nXFAIL t.py::h - why\n\
               SKIPPED [2] t.py:3: no\nPASSED t.py::k[/abs/dir/file.py]\nt.py::m PASSED\n\
               ERROR: not a test\n";
    let plain = LogFormat::Pytest.parse(log);
    assert_eq!(plain.get("t.py::f[a"), Some(&Passed));
    assert_eq!(plain.get("t.py::g[x]"), Some(&Failed));
    assert_eq!(plain.get("t.py::h"), Some(&Xfail));
    assert_eq!(plain.get("t.py::k[/abs/dir/file.py]"), Some(&Passed));
    assert!(!plain.contains_key("t.py::m") && !plain.contains_key("[2]"));
    assert!(
        !plain.contains_key("not"),
        "a non-status first word is skipped"
    );

    let options = LogFormat::Requests.parse(log);
    assert_eq!(options.get("t.py::k[/file.py]"), Some(&Passed));

    let v2 = LogFormat::Astropy.parse(log);
    assert_eq!(v2.get("t.py::f[a b]"), Some(&Passed));
    assert_eq!(v2.get("t.py::g[x]"), Some(&Failed));
    assert_eq!(
        v2.get("t.py::h - why"),
        Some(&Xfail),
        "only FAILED lines lose the message"
    );
    assert_eq!(v2.get("t.py::m"), Some(&Passed));

    let seaborn = LogFormat::Seaborn.parse(log);
    assert_eq!(seaborn.get("t.py::g[x]"), Some(&Failed));
    // `id PASSED` counts only with something after the status, as in `id PASSED [ 50%]`.
    assert!(!seaborn.contains_key("t.py::m"));
    assert_eq!(seaborn.len(), 3);
}

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("PONDER_SWEBENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/swebench")
        });
    if dir.join("lite-test.jsonl").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no SWE-bench data at {} (set PONDER_SWEBENCH_DATA to the folder holding \
             lite-test.jsonl)",
            dir.display()
        );
        None
    }
}

fn lite_rows() -> Option<Vec<serde_json::Value>> {
    let path = shared_data()?.join("lite-test.jsonl");
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn ids(row: &serde_json::Value, key: &str) -> Vec<String> {
    serde_json::from_str(row[key].as_str().unwrap()).unwrap()
}

/// Django's ids in the dataset are what this parser makes of unittest's verbose lines: the
/// `name (module.Class)` of the fixture, or a docstring's first line.
#[test]
fn django_dataset_ids_have_the_parsers_shape() {
    let Some(rows) = lite_rows() else { return };
    let shape = regex::Regex::new(r"^\w+ \([\w.]+\)$").unwrap();
    let (_, fixture) = parse_fixture(LogFormat::Django, "runtests.log");
    let fixture_named: Vec<&String> = fixture
        .keys()
        .filter(|id| id.starts_with("test_") && id.contains(" ("))
        .collect();
    assert!(fixture_named.len() > 10);
    assert!(
        fixture_named.iter().all(|id| shape.is_match(id)),
        "{fixture_named:?}"
    );

    let (mut named, mut described) = (0, 0);
    for row in rows.iter().filter(|r| r["repo"] == "django/django") {
        for id in ids(row, "FAIL_TO_PASS") {
            let printed = if shape.is_match(&id) {
                named += 1;
                format!("{id} ... ok\n")
            } else {
                described += 1;
                assert!(!id.contains(" ... ") && !id.contains('\n'), "{id:?}");
                format!("test_x (m.T)\n{id} ... ok\n")
            };
            let map = LogFormat::Django.parse(&printed);
            assert_eq!(
                map.get(&id),
                Some(&Passed),
                "{}: {id:?}",
                row["instance_id"]
            );
        }
    }
    assert!(
        named > 100 && described > 0,
        "named {named}, described {described}"
    );
    assert!(named > described, "most django ids name a method and class");
}

/// sympy's ids are bare test function names, as the `test_x ok` lines give them.
#[test]
fn sympy_dataset_ids_have_the_parsers_shape() {
    let Some(rows) = lite_rows() else { return };
    let mut checked = 0;
    for row in rows.iter().filter(|r| r["repo"] == "sympy/sympy") {
        for id in ids(row, "FAIL_TO_PASS") {
            assert!(
                id.starts_with("test_") && !id.contains(char::is_whitespace),
                "{id:?}"
            );
            let map = LogFormat::Sympy.parse(&format!("{id} ok\n{id}_other F\n"));
            assert_eq!(
                map.get(&id),
                Some(&Passed),
                "{}: {id:?}",
                row["instance_id"]
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} sympy ids");
}

/// pytest-family ids are node ids, read back whole from a `-rA` line by every pytest parser
/// unless they contain a space (then the plain parsers cut them, as the dataset did).
#[test]
fn pytest_dataset_ids_round_trip_through_their_parser() {
    let Some(rows) = lite_rows() else { return };
    let mut checked = 0;
    for row in &rows {
        let format: LogFormat = row["log_parser"].as_str().unwrap().parse().unwrap();
        if matches!(format, LogFormat::Django | LogFormat::Sympy) {
            continue;
        }
        for id in ids(row, "FAIL_TO_PASS") {
            assert!(id.contains("::") || id.contains(".py"), "{id:?}");
            let map = format.parse(&format!("PASSED {id}\n"));
            let truncated = id.matches('[').count() > id.matches(']').count();
            if !truncated && !id.contains("MouseButton") {
                assert_eq!(
                    map.get(&id),
                    Some(&Passed),
                    "{}: {id:?}",
                    row["instance_id"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} pytest ids");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// No parser panics on arbitrary text, and none on text built from the fragments they react to.
    #[test]
    fn parsers_never_panic(
        noise in ".{0,200}",
        parts in proptest::collection::vec(prop::sample::select(FRAGMENTS.to_vec()), 0..40),
    ) {
        let built: String = parts.concat();
        for format in LogFormat::ALL {
            let _ = format.parse(&noise);
            let _ = format.parse(&built);
            let _ = format.parse(&format!("{built}{noise}"));
        }
        let _ = extract_test_output(&built);
    }
}

const FRAGMENTS: &[&str] = &[
    "PASSED",
    "FAILED",
    "SKIPPED",
    "ERROR",
    "XFAIL",
    " ",
    "\t",
    "\n",
    "\r\n",
    " - ",
    " ... ",
    " ... ok",
    " ... FAIL",
    " ... ERROR",
    " ... skipped",
    "FAIL:",
    "ERROR:",
    "ok",
    "test_a",
    "[",
    "]",
    "[3]",
    "/",
    "//",
    "*",
    "\u{1b}[31m",
    "[0m",
    "\u{1c}",
    "\u{a0}",
    "_____",
    ".py:",
    " E",
    " F",
    "MouseButton.LEFT",
    ">>>>> Start Test Output",
    ">>>>> End Test Output",
    "é",
    "Testing against Django installed in ",
    " silenced).",
    "Internal Server Error: /",
    "System check identified no issues (0 silenced)",
    "Applying sites.0002_alter_domain_unique...test_no_migrations",
];
