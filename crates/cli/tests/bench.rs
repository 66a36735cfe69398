//! End-to-end test of `ponder bench --policy sim` and `ponder report` through the real binary,
//! on two of the bundled example tasks (real bug fixes in PyPI releases of requests and
//! more-itertools): the simulated policy's candidates are checked and graded by really running
//! the tests in the sandbox.
//!
//! Needs bubblewrap, Python 3.9 and PyPI; prints `SKIPPED: ...` and returns when one is missing.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{PONDER, cache_dir, missing_prerequisite, root};

const IDS: &str =
    "psf__requests-2.27.1-proxy-auth,more-itertools__more-itertools-8.1.0-partition-pred-none";

fn bench(run_dir: &Path) -> Output {
    Command::new(PONDER)
        .args(["bench", "--policy", "sim", "--budgets", "1,2", "--quiet"])
        .arg("--dataset")
        .arg(root().join("examples/tasks/tasks.jsonl"))
        .args(["--instances", IDS])
        .arg("--run-dir")
        .arg(run_dir)
        .arg("--cache-dir")
        .arg(cache_dir())
        .output()
        .expect("ponder runs")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_simulated_bench_grades_every_cell_says_it_is_simulated_and_resumes() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = bench(&run);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SIMULATED POLICY"), "{stdout}");

    let manifest = read_json(&run.join("bench.json"));
    assert_eq!(manifest["simulated"], true);
    assert_eq!(manifest["resolve_before"], "harness-era");
    // Two instances, four strategies at budgets 1 and 2, single at 1.
    let mut cells = Vec::new();
    for id in IDS.split(',') {
        for entry in std::fs::read_dir(run.join("cells").join(id)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                cells.push(read_json(&p));
            }
        }
    }
    assert_eq!(cells.len(), 18);
    for c in &cells {
        assert!(c["error"].is_null(), "{c}");
        assert!(
            c["resolved"].is_boolean(),
            "every chosen patch is graded: {c}"
        );
        let b = c["budget"].as_u64().unwrap() as usize;
        assert!(c["candidates"].as_array().unwrap().len() <= b);
    }
    // Budgets share their rollouts: budget 1's candidates are budget 2's first.
    for id in IDS.split(',') {
        let b1 = read_json(&run.join(format!("cells/{id}/best-of-n-b1.json")));
        let b2 = read_json(&run.join(format!("cells/{id}/best-of-n-b2.json")));
        assert_eq!(b1["candidates"][0], b2["candidates"][0], "{id}");
        let single = read_json(&run.join(format!("cells/{id}/single-b1.json")));
        assert_eq!(single["candidates"], b1["candidates"], "{id}");
        // An oracle resolves whenever the chosen patch does.
        if b2["resolved"] == true {
            assert_eq!(b2["oracle"], true);
        }
    }

    // Prediction files say they are simulated, in their names and their records.
    let preds: Vec<_> = std::fs::read_dir(run.join("predictions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!preds.is_empty());
    assert!(
        preds.iter().all(|n| n.starts_with("SIMULATED-")),
        "{preds:?}"
    );
    let text = std::fs::read_to_string(run.join("predictions").join(&preds[0])).unwrap();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["simulated"], true);
        assert!(
            r["model_name_or_path"]
                .as_str()
                .unwrap()
                .contains("SIMULATED")
        );
    }

    // Candidates are graded as `ponder eval` grades by default: the tasks were created before
    // the harness era, so their environments resolve as PyPI stood then.
    let mut graded = 0;
    for id in IDS.split(',') {
        for entry in std::fs::read_dir(run.join("grades").join(id)).unwrap() {
            let result = entry
                .unwrap()
                .path()
                .join("eval")
                .join(id)
                .join("result.json");
            assert_eq!(read_json(&result)["resolve_before"], "2024-11-01");
            graded += 1;
        }
    }
    assert!(graded >= 2, "{graded}");

    let report = read_json(&run.join("report.json"));
    assert_eq!(report["simulated"], true);
    assert!(report["banner"].as_str().unwrap().contains("SIMULATED"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("scaling-plot") && html.contains("SIMULATED"));

    // A damaged cell is made again on the next run; the others are kept as they are.
    let damaged = run.join(format!(
        "cells/{}/vote-b2.json",
        IDS.split(',').next().unwrap()
    ));
    let kept = run.join(format!(
        "cells/{}/vote-b1.json",
        IDS.split(',').nth(1).unwrap()
    ));
    let kept_before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    let good = std::fs::read_to_string(&damaged).unwrap();
    std::fs::write(&damaged, "{ not json").unwrap();
    let again = bench(&run);
    assert!(again.status.success());
    // Everything but the wall time measured on the rerun comes back the same.
    let without_time = |mut v: Value| {
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(
        without_time(read_json(&damaged)),
        without_time(serde_json::from_str::<Value>(&good).unwrap())
    );
    assert_eq!(
        std::fs::metadata(&kept).unwrap().modified().unwrap(),
        kept_before
    );

    // `ponder report` alone rewrites the page.
    std::fs::remove_file(run.join("report.html")).unwrap();
    let rep = Command::new(PONDER)
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    assert!(rep.status.success());
    assert!(run.join("report.html").exists());

    // The run directory is not resumed in other environments.
    let out = Command::new(PONDER)
        .args(["bench", "--policy", "sim", "--budgets", "1,2", "--quiet"])
        .args(["--resolve-before", "latest"])
        .arg("--dataset")
        .arg(root().join("examples/tasks/tasks.jsonl"))
        .args(["--instances", IDS])
        .arg("--run-dir")
        .arg(&run)
        .arg("--cache-dir")
        .arg(cache_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("graded with --resolve-before harness-era"),
        "{err}"
    );

    // A date that does not exist is refused before any work, naming the flag and the way out.
    let out = Command::new(PONDER)
        .args(["bench", "--policy", "sim", "--resolve-before", "2024-02-30"])
        .arg("--dataset")
        .arg(root().join("examples/tasks/tasks.jsonl"))
        .arg("--run-dir")
        .arg(tmp.path().join("bad-date"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--resolve-before") && err.contains("latest"),
        "{err}"
    );
    assert!(!tmp.path().join("bad-date").exists());
}
