//! Measures what the sandbox adds to a command's wall time: the median of `true` and of
//! `python3 -c pass` run bare (std::process) against the same commands through
//! [`Sandbox::run`]: confined (bubblewrap + cgroups), confined without cgroups (what the cgroup
//! setup costs) and unconfined (what the supervision alone costs).
//!
//! Run with `cargo bench -p ponder-sandbox --bench overhead` (`PONDER_BENCH_RUNS=N` to change the
//! number of runs per case, 30 by default).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponder_sandbox::{AllowUnconfined, CommandSpec, Policy, Sandbox};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs bare, with the same minimal environment the sandbox gives (a different HOME alone changes
/// Python's startup time through its user site directory).
fn bare(argv: &[&str], home: &std::path::Path, runs: usize) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let status = Command::new(argv[0])
                    .args(&argv[1..])
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("HOME", home)
                    .env("LANG", "C.UTF-8")
                    .env("TMPDIR", "/tmp")
                    .stdin(Stdio::null())
                    .output()
                    .expect("bare run");
                assert!(status.status.success());
                start.elapsed()
            })
            .collect(),
    )
}

fn through(sandbox: &Sandbox, policy: &Policy, argv: &[&str], runs: usize) -> Duration {
    let dir = policy.writable[0].clone();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let out = sandbox
                    .run(&CommandSpec::new(argv.iter().copied()).cwd(&dir), policy)
                    .expect("sandboxed run");
                assert!(out.termination.success(), "{}", out.output);
                start.elapsed()
            })
            .collect(),
    )
}

/// The real interpreter behind `python3` (a pyenv shim would add its own startup cost).
fn python3() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runs: usize = std::env::var("PONDER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(30);
    let started = Instant::now();
    let confined = match Sandbox::detect(AllowUnconfined::No) {
        Ok(sb) => Some(sb),
        Err(e) => {
            eprintln!("SKIPPED: confined measurements: {e}");
            None
        }
    };
    let detect = started.elapsed();
    let unconfined = Sandbox::detect_with_bwrap(None, AllowUnconfined::Yes).expect("unconfined");
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = Policy::tests(dir.path());
    let home = tempfile::tempdir().expect("temp dir");

    println!("sandbox overhead, median of {runs} runs each");
    if let Some(sb) = &confined {
        println!("confined: {}", sb.describe());
        println!("Sandbox::detect took {:.1} ms", ms(detect));
    }
    let true_bin = "true".to_string();
    let mut cases: Vec<(&str, Vec<String>)> = vec![("true", vec![true_bin])];
    match python3() {
        Some(py) => cases.push(("python3 -c pass", vec![py, "-c".into(), "pass".into()])),
        None => eprintln!("SKIPPED: python3 case: no python3 on PATH"),
    }
    println!(
        "{:<16} {:>8} {:>16} {:>18} {:>16}",
        "command", "bare", "confined", "confined, no cg", "unconfined"
    );
    let no_cgroups = confined.clone().map(Sandbox::without_cgroups);
    for (label, argv) in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let bare_t = bare(&argv, home.path(), runs);
        let cell = |sb: Option<&Sandbox>| match sb {
            Some(sb) => {
                let t = through(sb, &policy, &argv, runs);
                format!(
                    "{:.2} ({:.1}x)",
                    ms(t),
                    t.as_secs_f64() / bare_t.as_secs_f64()
                )
            }
            None => "-".to_string(),
        };
        println!(
            "{:<16} {:>8.2} {:>16} {:>18} {:>16}",
            label,
            ms(bare_t),
            cell(confined.as_ref()),
            cell(no_cgroups.as_ref()),
            cell(Some(&unconfined)),
        );
    }
    println!("(milliseconds of wall time; ratio to bare in parentheses)");
}
