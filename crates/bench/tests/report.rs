//! The bench report read from a real run directory: numbers checked against values worked out by
//! hand (or with exact binomial sums), damaged and partial runs, and the HTML page rendered in
//! headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponder_bench::html::html;
use ponder_bench::record::{BENCH_FORMAT, Cell, Difficulty, Manifest, SimSummary, Tokens};
use ponder_bench::report::{
    self, Report, Row, binomial_band, build, load, pass_at_k, table, wilson,
};

const STRATEGIES: [&str; 5] = [
    "dev-search",
    "best-of-n",
    "vote",
    "endpoint-verify",
    "single",
];
const BUDGETS: [usize; 3] = [1, 2, 4];

/// One instance of the fixture: where it comes from and how its candidates grade.
struct Instance {
    id: &'static str,
    repo: &'static str,
    bucket: &'static str,
    /// The four independent rollouts (best-of-n, vote and endpoint-verify at budget k take the
    /// first k).
    rollouts: [bool; 4],
    /// dev-search's candidates at budget 4 (and, for this fixture, the first k at budget k).
    dev: [bool; 4],
}

const T: bool = true;
const F: bool = false;

/// Ten instances: oracle of the rollouts at b1/b2/b4 = 3/5/7 of 10; resolving candidates
/// among the four rollouts: 4,1,2,1,0,1,2,0,3,0 (14 of 40).
const INSTANCES: [Instance; 10] = [
    inst("i0", "astropy/astropy", "easy", [T, T, T, T], [T, T, T, T]),
    inst("i1", "astropy/astropy", "easy", [F, T, F, F], [F, T, F, T]),
    inst("i2", "astropy/astropy", "easy", [F, F, T, T], [F, F, F, T]),
    inst("i3", "astropy/astropy", "easy", [T, F, F, F], [T, F, T, F]),
    inst(
        "i4",
        "astropy/astropy",
        "medium",
        [F, F, F, F],
        [F, F, F, F],
    ),
    inst("i5", "django/django", "medium", [F, F, F, T], [F, F, T, F]),
    inst("i6", "django/django", "medium", [T, T, F, F], [F, F, F, F]),
    inst("i7", "django/django", "hard", [F, F, F, F], [F, F, F, F]),
    inst("i8", "django/django", "hard", [F, T, T, T], [F, F, F, T]),
    inst("i9", "django/django", "hard", [F, F, F, F], [F, F, F, F]),
];

const fn inst(
    id: &'static str,
    repo: &'static str,
    bucket: &'static str,
    rollouts: [bool; 4],
    dev: [bool; 4],
) -> Instance {
    Instance {
        id,
        repo,
        bucket,
        rollouts,
        dev,
    }
}

/// Which instances (by index) each strategy resolves at each budget.
fn resolved_set(strategy: &str, budget: usize) -> Vec<usize> {
    match (strategy, budget) {
        // At budget 1 the three whole-rollout strategies can only take the one rollout.
        ("best-of-n" | "vote" | "endpoint-verify", 1) => vec![0, 3, 6],
        ("best-of-n", 2) => vec![0, 6],
        ("best-of-n", 4) => vec![0, 2, 6, 8],
        ("vote", 2) => vec![0, 1, 3],
        ("vote", 4) => vec![0, 1, 2, 3, 6],
        ("endpoint-verify", 2) => vec![0],
        ("endpoint-verify", 4) => vec![0, 8],
        ("dev-search", 1) => vec![0, 3],
        ("dev-search", 2) => vec![0, 1, 3],
        ("dev-search", 4) => vec![0, 1, 2, 3, 5],
        ("single", 1) => vec![0, 3],
        _ => unreachable!("{strategy} b{budget}"),
    }
}

/// (reasoning, answer) tokens of one sample by bucket.
fn sample_tokens(bucket: &str) -> (u64, u64) {
    match bucket {
        "easy" => (100, 50),
        "medium" => (300, 60),
        _ => (900, 70),
    }
}

fn cell(i: usize, strategy: &str, budget: usize) -> Cell {
    let inst = &INSTANCES[i];
    let candidates: Vec<Option<bool>> = match strategy {
        "dev-search" => inst.dev[..budget].iter().map(|&g| Some(g)).collect(),
        "single" => vec![Some(resolved_set("single", 1).contains(&i))],
        _ => inst.rollouts[..budget].iter().map(|&g| Some(g)).collect(),
    };
    let oracle = candidates.contains(&Some(true));
    let (reasoning, answer) = sample_tokens(inst.bucket);
    let b = budget as u64;
    // endpoint-verify could not grade its choice on i9 at budget 4.
    let error = (strategy == "endpoint-verify" && budget == 4 && i == 9)
        .then(|| "grading failed: environment build timed out".to_string());
    let resolved = match error {
        Some(_) => None,
        None => Some(resolved_set(strategy, budget).contains(&i)),
    };
    Cell {
        instance_id: inst.id.to_string(),
        repo: inst.repo.to_string(),
        strategy: strategy.to_string(),
        budget,
        difficulty: Difficulty {
            files: 1,
            hunks: 1,
            lines: 3,
            bucket: inst.bucket.to_string(),
        },
        resolved,
        has_patch: true,
        candidates,
        oracle: Some(oracle),
        tokens: Tokens {
            prompt: 1000 * b,
            completion: (reasoning + answer) * b,
            reasoning: reasoning * b,
        },
        calls: 3 * b,
        seconds: 2.0 * budget as f64,
        error,
    }
}

fn manifest(simulated: bool, p_rollout: f64) -> Manifest {
    Manifest {
        format: BENCH_FORMAT,
        ponder_version: "0.1.0".into(),
        dataset: "princeton-nlp/SWE-bench_Lite".into(),
        policy: if simulated { "sim" } else { "qwen3-32b" }.into(),
        simulated,
        sim: simulated.then(|| SimSummary {
            p_rollout,
            config: serde_json::json!({"p_localize": 0.7, "p_patch": 0.5, "note": "<b>&"}),
        }),
        strategies: STRATEGIES.iter().map(|s| s.to_string()).collect(),
        budgets: BUDGETS.to_vec(),
        instances: INSTANCES.iter().map(|i| i.id.to_string()).collect(),
        resolve_before: Some("harness-era".into()),
        started: "2025-06-01T12:00:00Z".into(),
    }
}

fn all_cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for i in 0..INSTANCES.len() {
        for strategy in STRATEGIES {
            let budgets: &[usize] = if strategy == "single" { &[1] } else { &BUDGETS };
            for &b in budgets {
                cells.push(cell(i, strategy, b));
            }
        }
    }
    cells
}

/// Writes a run directory as `ponder bench` lays it out.
fn write_run(dir: &Path, manifest: &Manifest, cells: &[Cell]) {
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(manifest).unwrap(),
    )
    .unwrap();
    for c in cells {
        let path = cell_path(dir, &c.instance_id, &c.strategy, c.budget);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(c).unwrap()).unwrap();
    }
}

fn cell_path(dir: &Path, instance: &str, strategy: &str, budget: usize) -> PathBuf {
    dir.join("cells")
        .join(instance)
        .join(format!("{strategy}-b{budget}.json"))
}

fn row<'a>(report: &'a Report, strategy: &str, budget: usize) -> &'a Row {
    report
        .rows
        .iter()
        .find(|r| r.strategy == strategy && r.budget == budget)
        .unwrap_or_else(|| panic!("no row {strategy} b{budget}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

/// A complete simulated run, loaded from disk.
fn complete_run() -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &manifest(true, 0.35), &all_cells());
    let loaded = load(dir.path()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.cells.len(), 10 * 13);
    (dir, loaded.report())
}

#[test]
fn wilson_interval_matches_known_values() {
    let i = wilson(7, 10);
    assert_close(i.low, 0.396_778, 1e-5);
    assert_close(i.high, 0.892_209, 1e-5);
    let i = wilson(0, 10);
    assert_eq!(i.low, 0.0);
    assert_close(i.high, 0.277_533, 1e-5);
    let i = wilson(10, 10);
    assert_close(i.low, 0.722_467, 1e-5);
    assert!(i.high <= 1.0 && i.high > 0.9999);
    // Nothing measured: the whole range.
    let i = wilson(0, 0);
    assert_eq!((i.low, i.high), (0.0, 1.0));
}

#[test]
fn pass_at_k_is_the_unbiased_estimator() {
    // 1 - C(n-c, k) / C(n, k), worked out by hand.
    assert!(close(pass_at_k(4, 1, 1), 0.25));
    assert!(close(pass_at_k(4, 1, 2), 0.5)); // 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert!(close(pass_at_k(4, 2, 2), 5.0 / 6.0)); // 1 - 1/6
    assert!(close(pass_at_k(4, 3, 2), 1.0)); // fewer failures than k
    assert!(close(pass_at_k(4, 0, 4), 0.0));
    assert!(close(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0)); // C(7,5)=21, C(10,5)=252
}

#[test]
fn binomial_band_hand_checked() {
    // Binomial(10, 0.5): P(X<=1) = 11/1024 < 0.025 <= P(X<=2) = 56/1024, and
    // P(X<=7) = 968/1024 < 0.975 <= P(X<=8) = 1013/1024.
    assert_eq!(binomial_band(10, 0.5), (0.2, 0.8));
    assert!(close(report::binomial_cdf(2, 10, 0.5), 56.0 / 1024.0));
    // Certain outcomes have no spread.
    assert_eq!(binomial_band(10, 0.0), (0.0, 0.0));
    assert_eq!(binomial_band(10, 1.0), (1.0, 1.0));
    // Exact sums (Python's math.comb) for Binomial(20, 0.3): 2..10 of 20.
    assert_eq!(binomial_band(20, 0.3), (0.1, 0.5));
}

#[test]
fn complete_run_numbers() {
    let (_dir, report) = complete_run();
    assert!(report.simulated);
    assert!(
        report
            .banner
            .as_deref()
            .unwrap()
            .contains("SIMULATED POLICY")
    );
    let c = &report.completeness;
    assert!(!c.partial && c.note.is_none() && c.missing.is_empty());
    assert_eq!(
        (
            c.instances,
            c.instances_complete,
            c.cells_expected,
            c.cells_found
        ),
        (10, 10, 130, 130)
    );
    // dev-search, best-of-n, vote, endpoint-verify at 1, 2, 4, then single at 1.
    assert_eq!(report.rows.len(), 13);

    let r = row(&report, "best-of-n", 4);
    assert_eq!((r.instances, r.resolved, r.oracle), (10, 4, 7));
    assert!(close(r.resolve_rate, 0.4));
    assert_close(r.resolve_ci.low, 0.168_180, 1e-5);
    assert_close(r.resolve_ci.high, 0.687_326, 1e-5);
    assert!(close(r.oracle_rate, 0.7));
    assert_close(r.oracle_ci.low, 0.396_778, 1e-5);
    assert_close(r.oracle_ci.high, 0.892_209, 1e-5);
    assert!(close(r.selection_efficiency.unwrap(), 4.0 / 7.0));
    // Prompt 4000 each; completion 600 (easy), 1440 (medium), 3880 (hard) over 4+3+3.
    assert_eq!(r.tokens.prompt, 40_000);
    assert_eq!(r.tokens.completion, 4 * 600 + 3 * 1440 + 3 * 3880);
    assert_eq!(r.tokens.reasoning, 4 * 400 + 3 * 1200 + 3 * 3600);
    assert_eq!(r.tokens.answer, r.tokens.completion - r.tokens.reasoning);
    assert!(close(r.tokens_mean.total, 5836.0));
    assert!(close(r.tokens_per_resolved.unwrap(), 58_360.0 / 4.0));
    assert!(close(r.seconds_total, 80.0) && close(r.seconds_mean, 8.0));
    assert_eq!(r.errors, 0);

    // Same candidates, other choices: the oracle is shared, the efficiency is not.
    let v = row(&report, "vote", 4);
    assert_eq!((v.resolved, v.oracle), (5, 7));
    assert!(close(v.selection_efficiency.unwrap(), 5.0 / 7.0));
    let e = row(&report, "endpoint-verify", 4);
    assert_eq!((e.resolved, e.oracle, e.errors), (2, 7, 1));
    let d = row(&report, "dev-search", 4);
    assert_eq!((d.resolved, d.oracle), (5, 6));
    assert!(close(d.selection_efficiency.unwrap(), 5.0 / 6.0));
    // At budget 1 there is nothing to choose between.
    assert!(close(
        row(&report, "best-of-n", 1).selection_efficiency.unwrap(),
        1.0
    ));
    assert_eq!(row(&report, "best-of-n", 2).oracle, 5);
    let s = row(&report, "single", 1);
    assert_eq!((s.instances, s.resolved, s.oracle), (10, 2, 2));
    assert!(
        !report
            .rows
            .iter()
            .any(|r| r.strategy == "single" && r.budget > 1)
    );
}

#[test]
fn breakdowns_by_repo_and_difficulty() {
    let (_dir, report) = complete_run();
    let rate = |groups: &[report::GroupRates], group: &str, strategy: &str, budget: usize| {
        let g = groups.iter().find(|g| g.group == group).unwrap();
        let r = g
            .rates
            .iter()
            .find(|r| r.strategy == strategy && r.budget == budget)
            .unwrap();
        (r.resolved, r.instances, r.rate)
    };
    let names: Vec<&str> = report.by_repo.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["astropy/astropy", "django/django"]);
    assert_eq!(
        rate(&report.by_repo, "astropy/astropy", "best-of-n", 4),
        (2, 5, 0.4)
    );
    assert_eq!(
        rate(&report.by_repo, "django/django", "vote", 4),
        (1, 5, 0.2)
    );

    let names: Vec<&str> = report
        .by_difficulty
        .iter()
        .map(|g| g.group.as_str())
        .collect();
    assert_eq!(names, ["easy", "medium", "hard"]);
    assert_eq!(
        rate(&report.by_difficulty, "easy", "best-of-n", 4),
        (2, 4, 0.5)
    );
    assert_eq!(rate(&report.by_difficulty, "hard", "dev-search", 4).0, 0);
    assert_eq!(report.by_difficulty[1].instances, 3);

    // Reasoning grows with difficulty, answers barely.
    let tokens = |strategy: &str, budget: usize, bucket: &str| {
        report
            .tokens_by_difficulty
            .iter()
            .find(|t| t.strategy == strategy && t.budget == budget && t.bucket == bucket)
            .map(|t| (t.instances, t.mean_reasoning, t.mean_answer))
            .unwrap()
    };
    assert_eq!(tokens("best-of-n", 4, "easy"), (4, 400.0, 200.0));
    assert_eq!(tokens("best-of-n", 4, "hard"), (3, 3600.0, 280.0));
    assert_eq!(tokens("single", 1, "medium"), (3, 300.0, 60.0));
}

#[test]
fn pass_at_k_and_theory_of_the_run() {
    let (_dir, report) = complete_run();
    let pk = report.pass_at_k.as_ref().unwrap();
    assert_eq!((pk.strategy.as_str(), pk.budget), ("best-of-n", 4));
    let values: Vec<(usize, usize, f64)> = pk
        .values
        .iter()
        .map(|v| (v.k, v.instances, v.value))
        .collect();
    assert_eq!(values.len(), 3);
    // pass@1 = 14/40; pass@2 = mean of 1, 1/2, 5/6, 1/2, 0, 1/2, 5/6, 0, 1, 0; pass@4 = 7/10.
    assert_eq!((values[0].0, values[0].1), (1, 10));
    assert!(close(values[0].2, 0.35));
    assert!(close(values[1].2, (3.5 + 10.0 / 6.0) / 10.0));
    assert!(close(values[2].2, 0.7));
    // With prefix-consistent rollouts pass@k at the largest budget is the oracle rate there.
    assert!(close(values[2].2, row(&report, "best-of-n", 4).oracle_rate));

    let t = report.theory.as_ref().unwrap();
    assert_eq!(t.p, 0.35);
    assert!(t.p_source.contains("simulator"));
    assert_eq!(t.strategy.as_deref(), Some("best-of-n"));
    // Expected 1-(0.65)^k and exact 95% bands of Binomial(10, expected) (Python's math.comb).
    let rows: Vec<_> = t
        .rows
        .iter()
        .map(|r| (r.k, r.measured, r.band_low, r.band_high, r.inside))
        .collect();
    assert_eq!(
        rows,
        [
            (1, 0.3, 0.1, 0.7, true),
            (2, 0.5, 0.3, 0.9, true),
            (4, 0.7, 0.6, 1.0, true)
        ]
    );
    assert!(close(t.rows[1].expected, 0.5775));
    assert!(close(t.rows[2].expected, 1.0 - 0.65f64.powi(4)));
    assert!(t.all_inside);
    let dev: Vec<_> = t.dev_search.iter().map(|r| (r.k, r.measured)).collect();
    assert_eq!(dev, [(1, 0.2), (2, 0.3), (4, 0.6)]);
}

#[test]
fn theory_flags_rates_outside_the_band_and_estimates_p_without_simulator() {
    // A simulator claiming p = 0.95 cannot have produced an oracle of 3 in 10 at k = 1:
    // Binomial(10, 0.95) puts 97.5% of its mass at 8 or more.
    let report = build(&manifest(true, 0.95), &all_cells());
    let t = report.theory.unwrap();
    assert_eq!((t.rows[0].band_low, t.rows[0].band_high), (0.8, 1.0));
    assert!(!t.rows[0].inside && !t.all_inside);
    assert!(table(&build(&manifest(true, 0.95), &all_cells())).contains("OUTSIDE"));

    // A model run: no banner, and p is the mean fraction of resolving rollouts (14/40).
    let report = build(&manifest(false, 0.0), &all_cells());
    assert!(!report.simulated && report.banner.is_none());
    let t = report.theory.as_ref().unwrap();
    assert!(close(t.p, 0.35));
    assert!(t.p_source.contains("estimated"));
    assert!(!table(&report).contains("SIMULATED"));
}

#[test]
fn malformed_cell_is_a_warning_and_partial_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut cells = all_cells();
    // i7 and i8 have not been reached at budget 4 yet.
    cells.retain(|c| !(matches!(c.instance_id.as_str(), "i7" | "i8") && c.budget == 4));
    write_run(dir.path(), &manifest(true, 0.35), &cells);
    // One cell cut short mid-write, one that is not JSON at all.
    let truncated = cell_path(dir.path(), "i9", "vote", 4);
    let text = std::fs::read_to_string(&truncated).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let garbage = cell_path(dir.path(), "i0", "dev-search", 1);
    std::fs::write(&garbage, "not json").unwrap();

    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    for (w, path) in loaded.warnings.iter().zip([&garbage, &truncated]) {
        assert!(w.contains(&path.display().to_string()), "{w}");
        assert!(w.contains("rerun `ponder bench`"), "{w}");
    }
    let report = loaded.report();
    assert_eq!(report.warnings, loaded.warnings);

    let c = &report.completeness;
    assert!(c.partial);
    assert!(
        c.note
            .as_deref()
            .unwrap()
            .starts_with("PARTIAL RUN: 4 of 10 instances"),
        "{:?}",
        c.note
    );
    assert_eq!(c.cells_found, 130 - 8 - 2);
    assert_eq!(c.instances_complete, 6);
    assert_eq!(c.instances_with_cells, 10);
    let missing = |id: &str| {
        c.missing
            .iter()
            .find(|m| m.instance_id == id)
            .unwrap()
            .cells
            .clone()
    };
    assert_eq!(missing("i0"), ["dev-search-b1"]);
    assert_eq!(missing("i9"), ["vote-b4"]);
    assert_eq!(
        missing("i7"),
        [
            "dev-search-b4",
            "best-of-n-b4",
            "vote-b4",
            "endpoint-verify-b4"
        ]
    );

    // The rest is still reported, over the cells present.
    assert_eq!(row(&report, "vote", 4).instances, 7);
    assert_eq!(row(&report, "dev-search", 1).instances, 9);
    assert_eq!(row(&report, "best-of-n", 4).resolved, 3); // i8 is missing
    let text = table(&report);
    assert!(text.contains("PARTIAL RUN"));
    let page = html(&report);
    assert!(page.contains("<p id=\"partial-note\" class=\"note\">PARTIAL RUN: 4 of 10"));
    assert!(page.contains("<li>i7: dev-search-b4, best-of-n-b4, vote-b4, endpoint-verify-b4</li>"));
    assert!(page.contains(&format!("skipped cell {}", garbage.display())));
    assert!(text.contains(&garbage.display().to_string()));
}

#[test]
fn cells_outside_the_manifest_and_misplaced_files_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = manifest(true, 0.35);
    m.instances.retain(|i| i != "i9");
    write_run(dir.path(), &m, &all_cells());
    // A cell copied under another instance's folder.
    std::fs::copy(
        cell_path(dir.path(), "i1", "vote", 2),
        cell_path(dir.path(), "i2", "vote", 2),
    )
    .unwrap();
    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("not what its path says"));
    let report = loaded.report();
    // i9's 13 cells are left out, each with a warning.
    assert_eq!(report.warnings.len(), 1 + 13);
    assert_eq!(row(&report, "best-of-n", 4).instances, 9);
    assert_eq!(row(&report, "vote", 2).instances, 8);
}

#[test]
fn missing_manifest_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(format!("{e:#}").contains("bench.json"), "{e:#}");
    std::fs::write(dir.path().join("bench.json"), "{").unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(format!("{e:#}").contains("not a bench manifest"), "{e:#}");
    // A run directory with a manifest and no cell yet is a (very) partial run.
    write_run(dir.path(), &manifest(true, 0.35), &[]);
    let report = load(dir.path()).unwrap().report();
    assert!(report.completeness.partial && report.rows.is_empty());
    assert!(report.pass_at_k.is_none());
    // The page still draws (empty plots, no error text).
    let page = html(&report);
    assert!(page.contains("id=\"scaling-plot\"") && page.contains("id=\"partial-note\""));
    assert!(!page.contains("could not be drawn"), "{page}");
}

#[test]
fn table_and_json() {
    let (_dir, report) = complete_run();
    let text = table(&report);
    assert!(text.starts_with("====="), "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("SIMULATED POLICY"));
    // The strategy table: header, rule, 13 rows, all the same width (right-aligned numbers).
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("strategy"))
        .take(15)
        .collect();
    assert_eq!(lines.len(), 15);
    assert!(
        lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()),
        "{text}"
    );
    let bon4 = lines
        .iter()
        .find(|l| l.starts_with("best-of-n") && l.contains("[39.7, 89.2]"))
        .unwrap();
    assert!(
        bon4.contains("40.0%") && bon4.contains("70.0%") && bon4.contains("0.57"),
        "{bon4}"
    );
    assert!(text.contains("pass@2=51.7%"), "{text}");
    assert!(text.contains("every measured oracle rate is inside its band"));

    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    // Floats may come back an ulp off (serde_json's default float parsing), so compare the
    // rest exactly and the rates closely.
    assert_eq!(back.completeness, report.completeness);
    assert_eq!(back.banner, report.banner);
    assert_eq!(back.rows.len(), report.rows.len());
    for (a, b) in back.rows.iter().zip(&report.rows) {
        assert_eq!(
            (&a.strategy, a.budget, a.resolved, a.oracle),
            (&b.strategy, b.budget, b.resolved, b.oracle)
        );
        assert_close(a.resolve_ci.low, b.resolve_ci.low, 1e-12);
    }
    assert_eq!(back.theory.unwrap().rows.len(), 3);
    assert!(json.contains("\"banner\":\"SIMULATED POLICY"));
}

#[test]
fn html_escapes_text() {
    let mut m = manifest(true, 0.35);
    m.dataset = "<script>alert(1)</script>".into();
    let page = html(&build(&m, &all_cells()));
    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The simulator's settings hold "<b>&".
    assert!(page.contains("&lt;b&gt;&amp;"));
    // Self-contained: nothing fetched from elsewhere.
    for outside in ["<script", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(!page.contains(outside), "{outside}");
    }
}

/// Chromium as Debian installs it, or on PATH.
fn chromium() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Runs headless Chromium with `args` after the usual quiet flags, killing it after 60 s.
fn run_chromium(chromium: &Path, profile: &Path, args: &[String]) -> (Vec<u8>, String) {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Read the pipes on threads so a chatty Chromium cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut buf).ok();
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium did not finish within 60 s: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed ({status}): {err}");
    (out, err)
}

/// The `<svg ...>...</svg>` with this id in a serialized DOM.
fn svg_by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no <svg id=\"{id}\"> in the rendered page"));
    let end = dom[start..].find("</svg>").expect("svg closed") + start;
    &dom[start..end]
}

/// The trimmed contents of an SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let content = &t[t.find('>')? + 1..];
            Some(content[..content.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn html_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: chromium not installed (scripts/setup.sh installs it)");
        return;
    };
    let (dir, report) = complete_run();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html(&report)).unwrap();
    let url = format!("file://{}", page.display());

    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = run_chromium(
        &chromium,
        profile.path(),
        &["--dump-dom".into(), url.clone()],
    );
    let dom = String::from_utf8(dom).unwrap();
    assert!(dom.contains("id=\"simulated-banner\""), "{dom}");
    assert!(dom.contains("SIMULATED POLICY: candidates drawn by ponder's simulator"));

    // Each plot is in the DOM with drawn data, not just axes.
    let scaling = svg_by_id(&dom, "scaling-plot");
    // A line per strategy, and an oracle line per distinct oracle series (the three
    // whole-rollout strategies share one).
    assert!(scaling.matches("<polyline").count() >= 5, "{scaling}");
    assert!(scaling.contains("points=\""));
    // The legend names every strategy.
    let texts = svg_texts(scaling);
    for strategy in STRATEGIES {
        assert!(
            texts.iter().any(|t| t == strategy),
            "{strategy} not in {texts:?}"
        );
    }
    // (the legend wraps the label: "oracle: best-of-n = vote =", "endpoint-verify")
    assert!(
        texts.iter().any(|t| t == "oracle: best-of-n = vote ="),
        "{texts:?}"
    );
    let theory = svg_by_id(&dom, "theory-plot");
    assert!(theory.contains("<polygon"), "the band is shaded");
    assert!(theory.contains("<polyline"), "the curve is drawn");
    assert!(theory.contains("<circle"), "the measured points are drawn");
    let tokens = svg_by_id(&dom, "tokens-plot");
    // Two bars per strategy per bucket, plus the background and legend boxes.
    assert!(tokens.matches("<rect").count() >= 5 * 3 * 2, "{tokens}");
    for bucket in ["easy", "medium", "hard"] {
        assert!(tokens.contains(bucket), "{bucket}");
    }
    for table in [
        "strategy-table",
        "efficiency-table",
        "repo-table",
        "difficulty-table",
        "theory-table",
    ] {
        assert!(dom.contains(&format!("id=\"{table}\"")), "{table}");
    }

    // And it paints: the screenshot is the size asked for, far from one colour, and has the
    // banner's red near the top.
    let shot = profile.path().join("report.png");
    let profile2 = tempfile::tempdir().unwrap();
    run_chromium(
        &chromium,
        profile2.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000".into(),
            url,
        ],
    );
    // To look at the page: PONDER_KEEP_REPORT=<dir> keeps the HTML and the screenshot there.
    if let Some(keep) = std::env::var_os("PONDER_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report.html")).unwrap();
        std::fs::copy(&shot, keep.join("report.png")).unwrap();
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 2000));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixel = |x: usize, y: usize| {
        let at = (y * info.width as usize + x) * channels;
        (buf[at], buf[at + 1], buf[at + 2])
    };
    let mut colours = std::collections::HashSet::new();
    let mut banner_red = 0;
    for y in (0..info.height as usize).step_by(3) {
        for x in (0..info.width as usize).step_by(3) {
            let (r, g, b) = pixel(x, y);
            colours.insert((r, g, b));
            if y < 200 && r > 150 && g < 40 && b < 60 {
                banner_red += 1;
            }
        }
    }
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(
        banner_red > 1000,
        "banner red pixels near the top: {banner_red}"
    );
}
