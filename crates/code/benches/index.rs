//! The code index benchmark on Django 5.1.4 (the sdist from PyPI), with its reference measured in
//! the same run: cold builds with the scanner and with tree-sitter against Python's `ast` walking
//! the same tree (tests/ast_symbols.py, how the AutoCodeRover family indexes), the warm load from
//! the on-disk cache, the latency of every search tool and of BM25 retrieval, and the peak memory.
//! Prints one table with the goals and whether each was met.
//!
//! Run: `cargo bench -p ponder-code --bench index`. Without the sdist (no registry) or without
//! Python 3.12+, it prints `SKIPPED: <reason>` and succeeds.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Context, Result, bail};
use ponder_code::{
    CodeIndex, DefinitionParser, IndexOptions, IndexStats, SearchLimits, SymbolKind, ToolCall,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const COLD_RUNS: usize = 5;
const TREE_SITTER_RUNS: usize = 3;
const REFERENCE_RUNS: usize = 3;
const STARTUP_RUNS: usize = 5;
const WARM_RUNS: usize = 10;
/// Timed queries per tool, after the first call (which is reported on its own).
const QUERIES: usize = 100;
const RETRIEVE_TOP: usize = 20;
/// Fixed, so that every run draws the same queries.
const SEED: u64 = 0x5EED_C0DE;

const GOAL_RATIO: f64 = 10.0;
const GOAL_WARM_MS: f64 = 100.0;
const GOAL_SEARCH_MS: f64 = 20.0;

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: the index benchmark failed: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<()> {
    let root = match common::project_tree("Django", "5.1.4") {
        Ok(root) => root.canonicalize().unwrap_or(root),
        Err(reason) => {
            println!("SKIPPED: cannot get Django==5.1.4 from PyPI: {reason}");
            return Ok(());
        }
    };
    let python = match common::reference_python() {
        Ok(p) => p,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return Ok(());
        }
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ast_symbols.py");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();

    // One untimed build first: both sides then read the tree from the OS page cache.
    let (warmup, _) = CodeIndex::open(&root, IndexOptions::default())
        .context("indexing Django (warm-up build)")?;
    drop(warmup);

    let (cold, cold_stats) = cold_builds(&root, DefinitionParser::Scanner, COLD_RUNS)?;
    let (ts_cold, ts_stats) = cold_builds(&root, DefinitionParser::TreeSitter, TREE_SITTER_RUNS)?;

    let mut reference = Vec::new();
    let mut reference_counts = (0usize, 0usize);
    for _ in 0..REFERENCE_RUNS {
        let (ms, defs, unparsed) = reference_run(&python, &script, &root)?;
        reference.push(ms);
        reference_counts = (defs, unparsed);
    }
    let mut startup = Vec::new();
    for _ in 0..STARTUP_RUNS {
        startup.push(python_startup(&python)?);
    }

    let cache = tempfile::tempdir().context("creating a temporary cache folder")?;
    let cached = IndexOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..IndexOptions::default()
    };
    let (base, _) =
        CodeIndex::open(&root, cached.clone()).context("indexing Django into a cache")?;
    let mut warm = Vec::new();
    let mut warm_walk = Vec::new();
    let mut warm_analyze = Vec::new();
    let mut warm_stats = IndexStats::default();
    for _ in 0..WARM_RUNS {
        let started = Instant::now();
        let (index, stats) = CodeIndex::open(&root, cached.clone()).context("warm load")?;
        warm.push(ms_since(started));
        drop(index);
        warm_walk.push(stats.walk_ms);
        warm_analyze.push(stats.analyze_ms);
        warm_stats = stats;
    }
    if !warm_stats.cache_loaded {
        bail!("the warm load did not find the cache it had just written");
    }

    let queries = Queries::draw(&base, &root)?;
    let mut rows = Vec::new();
    for (tool, calls) in queries.tools() {
        rows.push(time_tool(&root, &cached, tool, calls)?);
    }
    rows.push(time_retrieve(&root, &cached, &queries.issues)?);
    let preload_ms = {
        let (index, _) = CodeIndex::open(&root, cached.clone()).context("warm load")?;
        let started = Instant::now();
        index.load_visible_contents();
        ms_since(started)
    };

    let peak_rss = peak_rss_kib();
    let load_after = load_average();

    // The table.
    let cold_ms = median(&cold);
    let ts_ms = median(&ts_cold);
    let ref_ms = median(&reference);
    let start_ms = median(&startup);
    let warm_ms = median(&warm);
    println!();
    println!(
        "ponder-code index benchmark: Django 5.1.4 at {}",
        root.display()
    );
    println!(
        "machine: {cores} cores available; load average {} at start, {} at end (other work on the machine adds noise)",
        load_before, load_after
    );
    println!("reference: {} {}", python.display(), script.display());
    println!(
        "index: {} files, {} visible, {} definitions (scanner), {} (tree-sitter); ast finds {} definitions in all .py files ({} it cannot parse)",
        cold_stats.files,
        cold_stats.visible_files,
        cold_stats.symbols,
        ts_stats.symbols,
        reference_counts.0,
        reference_counts.1
    );
    println!("the tree is in the OS page cache for every timed run (one untimed build first)");
    println!();
    println!("{:<44} {:>10} {:>5}  note", "indexing", "median ms", "runs");
    let line = |what: &str, ms: f64, runs: usize, note: &str| {
        println!("{what:<44} {ms:>10.1} {runs:>5}  {note}");
    };
    line(
        "ponder cold build, scanner (default)",
        cold_ms,
        COLD_RUNS,
        "fresh empty cache folder each run; includes writing the cache",
    );
    line(
        "ponder cold build, tree-sitter",
        ts_ms,
        TREE_SITTER_RUNS,
        "for information",
    );
    line(
        "python ast_symbols.py ROOT --quiet",
        ref_ms,
        REFERENCE_RUNS,
        "wall time of the subprocess, Python startup included",
    );
    line(
        "python -c pass",
        start_ms,
        STARTUP_RUNS,
        "Python startup alone: subtract it from the line above",
    );
    line(
        "ponder warm load (cache present)",
        warm_ms,
        WARM_RUNS,
        &format!(
            "IndexStats medians: walk {:.1} ms, analyze {:.1} ms; {} reused, {} re-hashed",
            median(&warm_walk),
            median(&warm_analyze),
            warm_stats.reused,
            warm_stats.rehashed
        ),
    );
    line(
        "load_visible_contents (fresh warm index)",
        preload_ms,
        1,
        "reads every visible file in parallel; for information",
    );
    println!();
    println!("ratios (higher is better for ponder)");
    println!(
        "  reference / ponder cold (scanner)          {:>6.1}x   ({:.1}x with Python startup subtracted)",
        ref_ms / cold_ms,
        (ref_ms - start_ms) / cold_ms
    );
    println!(
        "  reference / ponder cold (tree-sitter)      {:>6.1}x   ({:.1}x with Python startup subtracted)",
        ref_ms / ts_ms,
        (ref_ms - start_ms) / ts_ms
    );
    println!();
    println!(
        "search latency, ms ({QUERIES} timed queries per tool drawn from the index with a fixed seed; each tool on its own freshly loaded warm index)"
    );
    println!(
        "{:<24} {:>10} {:>8} {:>8} {:>8}  first call pays for",
        "tool", "found", "first", "median", "p90"
    );
    for r in &rows {
        println!(
            "{:<24} {:>10} {:>8.2} {:>8.3} {:>8.3}  {}",
            r.tool,
            format!("{}/{}", r.found, r.times.len()),
            r.first_ms,
            median(&r.times),
            p90(&r.times),
            r.first_note
        );
    }
    println!();
    println!("goals");
    println!(
        "{:<44} {:>12} {:>12}  verdict",
        "measure", "measured", "goal"
    );
    let verdict = |ok: bool| if ok { "met" } else { "not met" };
    let ratio = ref_ms / cold_ms;
    println!(
        "{:<44} {:>12} {:>12}  {}",
        "reference / ponder cold (scanner)",
        format!("{ratio:.1}x"),
        format!(">= {GOAL_RATIO:.0}x"),
        verdict(ratio >= GOAL_RATIO)
    );
    println!(
        "{:<44} {:>12} {:>12}  {}",
        "warm load, median",
        format!("{warm_ms:.1} ms"),
        format!("< {GOAL_WARM_MS:.0} ms"),
        verdict(warm_ms < GOAL_WARM_MS)
    );
    for r in &rows {
        let m = median(&r.times);
        println!(
            "{:<44} {:>12} {:>12}  {}",
            format!("{}, median", r.tool),
            format!("{m:.3} ms"),
            format!("< {GOAL_SEARCH_MS:.0} ms"),
            verdict(m < GOAL_SEARCH_MS)
        );
    }
    match peak_rss {
        Some(kib) => println!(
            "\npeak RSS of the benchmark process (VmHWM): {:.1} MiB (every index above was built and dropped in turn)",
            kib as f64 / 1024.0
        ),
        None => println!("\npeak RSS: unavailable (no VmHWM in /proc/self/status)"),
    }
    Ok(())
}

/// `runs` cold builds, each into a fresh empty cache folder; times and the last build's stats.
fn cold_builds(
    root: &Path,
    parser: DefinitionParser,
    runs: usize,
) -> Result<(Vec<f64>, IndexStats)> {
    let mut times = Vec::new();
    let mut last = IndexStats::default();
    for _ in 0..runs {
        let cache = tempfile::tempdir().context("creating a temporary cache folder")?;
        let options = IndexOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            parser,
            ..IndexOptions::default()
        };
        let started = Instant::now();
        let (index, stats) = CodeIndex::open(root, options)
            .with_context(|| format!("cold build of {} with {parser:?}", root.display()))?;
        times.push(ms_since(started));
        drop(index);
        if stats.cache_loaded || !stats.cache_written {
            bail!("a cold build found a cache or could not write one: {stats:?}");
        }
        last = stats;
    }
    Ok((times, last))
}

/// One run of the `ast` reference: wall time, the definitions it counted, the files it could not
/// parse.
fn reference_run(python: &Path, script: &Path, root: &Path) -> Result<(f64, usize, usize)> {
    let started = Instant::now();
    let out = Command::new(python)
        .arg(script)
        .arg(root)
        .arg("--quiet")
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let ms = ms_since(started);
    if !out.status.success() {
        bail!(
            "the ast reference failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let defs = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("the ast reference did not print a definition count")?;
    let unparsed = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("UNPARSED "))
        .count();
    Ok((ms, defs, unparsed))
}

fn python_startup(python: &Path) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(python)
        .args(["-c", "pass"])
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    let ms = ms_since(started);
    if !status.success() {
        bail!("{} -c pass failed ({status})", python.display());
    }
    Ok(ms)
}

/// Queries drawn from the index itself, so that most of them find something, as a model's do.
struct Queries {
    class: Vec<ToolCall>,
    class_in_file: Vec<ToolCall>,
    method: Vec<ToolCall>,
    method_in_class: Vec<ToolCall>,
    method_in_file: Vec<ToolCall>,
    code: Vec<ToolCall>,
    code_in_file: Vec<ToolCall>,
    issues: Vec<String>,
}

impl Queries {
    /// One more query than `QUERIES` per tool: the first call is reported apart.
    fn draw(index: &CodeIndex, root: &Path) -> Result<Queries> {
        let n = QUERIES + 1;
        let mut rng = SplitMix(SEED);
        let mut classes: Vec<(&str, &str)> = Vec::new();
        let mut callables: Vec<(&str, &str)> = Vec::new();
        let mut methods: Vec<(&str, &str)> = Vec::new();
        let mut files: Vec<&str> = Vec::new();
        for f in index.visible_files() {
            let entry = index.file(f);
            files.push(&entry.path);
            for s in &entry.symbols {
                match s.kind {
                    SymbolKind::Class => classes.push((&s.name, &entry.path)),
                    SymbolKind::Function | SymbolKind::Method => {
                        callables.push((&s.name, &entry.path))
                    }
                }
                if s.kind == SymbolKind::Method
                    && let Some(parent) = s.parent.and_then(|p| entry.symbols.get(p as usize))
                    && parent.kind == SymbolKind::Class
                {
                    methods.push((&s.name, &parent.name));
                }
            }
        }
        if classes.is_empty() || callables.is_empty() || methods.is_empty() {
            bail!("the index of Django has no classes or functions: the tree looks wrong");
        }
        let s = String::from;
        let mut q = Queries {
            class: Vec::new(),
            class_in_file: Vec::new(),
            method: Vec::new(),
            method_in_class: Vec::new(),
            method_in_file: Vec::new(),
            code: Vec::new(),
            code_in_file: Vec::new(),
            issues: Vec::new(),
        };
        for _ in 0..n {
            let (name, _) = *rng.pick(&classes);
            q.class.push(ToolCall::SearchClass {
                class_name: s(name),
            });
            let (name, file) = *rng.pick(&classes);
            q.class_in_file.push(ToolCall::SearchClassInFile {
                class_name: s(name),
                file_name: s(file),
            });
            let (name, _) = *rng.pick(&callables);
            q.method.push(ToolCall::SearchMethod {
                method_name: s(name),
            });
            let (name, class) = *rng.pick(&methods);
            q.method_in_class.push(ToolCall::SearchMethodInClass {
                method_name: s(name),
                class_name: s(class),
            });
            let (name, file) = *rng.pick(&callables);
            q.method_in_file.push(ToolCall::SearchMethodInFile {
                method_name: s(name),
                file_name: s(file),
            });
            let (text, _) = code_line(root, &files, &mut rng)?;
            q.code.push(ToolCall::SearchCode { code_str: text });
            let (text, file) = code_line(root, &files, &mut rng)?;
            q.code_in_file.push(ToolCall::SearchCodeInFile {
                code_str: text,
                file_name: s(file),
            });
            // A short issue-like text naming a method of a class and a function of some module.
            let (method, class) = *rng.pick(&methods);
            let (function, file) = *rng.pick(&callables);
            let module = file
                .rsplit('/')
                .next()
                .unwrap_or(file)
                .trim_end_matches(".py");
            q.issues.push(format!(
                "{class}.{method}() gives a wrong result when {function} is used from {module}"
            ));
        }
        Ok(q)
    }

    fn tools(&self) -> [(&'static str, &[ToolCall]); 7] {
        [
            ("search_class", &self.class),
            ("search_class_in_file", &self.class_in_file),
            ("search_method", &self.method),
            ("search_method_in_class", &self.method_in_class),
            ("search_method_in_file", &self.method_in_file),
            ("search_code", &self.code),
            ("search_code_in_file", &self.code_in_file),
        ]
    }
}

/// A trimmed line of 20 to 60 characters from a random visible file, read from disk (not through
/// the index, whose lazily loaded contents must stay cold for the first-call figures).
fn code_line<'a>(root: &Path, files: &[&'a str], rng: &mut SplitMix) -> Result<(String, &'a str)> {
    for _ in 0..1000 {
        let file = *rng.pick(files);
        let path: PathBuf = root.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| (20..=60).contains(&l.len()))
            .collect();
        if !lines.is_empty() {
            return Ok((rng.pick(&lines).to_string(), file));
        }
    }
    bail!("found no line of 20 to 60 characters in 1000 draws: the tree looks wrong")
}

struct Row {
    tool: &'static str,
    first_ms: f64,
    first_note: &'static str,
    times: Vec<f64>,
    found: usize,
}

fn time_tool(
    root: &Path,
    options: &IndexOptions,
    tool: &'static str,
    calls: &[ToolCall],
) -> Result<Row> {
    let (index, _) = CodeIndex::open(root, options.clone()).context("warm load for a search")?;
    let limits = SearchLimits::default();
    let (first, rest) = calls.split_first().context("no queries drawn")?;
    let started = Instant::now();
    let out = index.run_tool(first, &limits);
    let first_ms = ms_since(started);
    std::hint::black_box(&out);
    let mut times = Vec::with_capacity(rest.len());
    let mut found = 0;
    for call in rest {
        let started = Instant::now();
        let out = index.run_tool(call, &limits);
        times.push(ms_since(started));
        found += usize::from(out.found);
        std::hint::black_box(&out);
    }
    let first_note = match first {
        ToolCall::SearchCode { .. } => "reading every visible file (serially), then the search",
        ToolCall::SearchCodeInFile { .. } => "reading that one file",
        _ => "building the name map, reading the files shown",
    };
    Ok(Row {
        tool,
        first_ms,
        first_note,
        times,
        found,
    })
}

fn time_retrieve(root: &Path, options: &IndexOptions, issues: &[String]) -> Result<Row> {
    let (index, _) = CodeIndex::open(root, options.clone()).context("warm load for retrieval")?;
    let (first, rest) = issues.split_first().context("no queries drawn")?;
    let started = Instant::now();
    std::hint::black_box(index.retrieve(first, RETRIEVE_TOP));
    let first_ms = ms_since(started);
    let mut times = Vec::with_capacity(rest.len());
    let mut found = 0;
    for issue in rest {
        let started = Instant::now();
        let out = index.retrieve(issue, RETRIEVE_TOP);
        times.push(ms_since(started));
        found += usize::from(!out.is_empty());
        std::hint::black_box(&out);
    }
    Ok(Row {
        tool: "retrieve (BM25, top 20)",
        first_ms,
        first_note: "reading every visible file and building the postings (parallel)",
        times,
        found,
    })
}

/// A small fixed-seed generator (splitmix64): the same queries on every run, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank 90th percentile.
fn p90(values: &[f64]) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (0.9 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The one-minute load average, or "?" where /proc is missing.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}
