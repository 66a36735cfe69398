//! ponder's dated index with a real pip against real PyPI: pip resolves what PyPI offered
//! before the date, alone and inside a layer. six 1.12.0 was uploaded on 2018-12-10 and 1.13.0
//! in November 2019.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ponder_env::{BuildOptions, DatedIndex, EnvRecipe, Interpreter, Interpreters, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

/// The shared dated index, or `None` after printing why the test is skipped (PyPI unreachable).
fn dated_index() -> Option<&'static DatedIndex> {
    let index = DatedIndex::shared().expect("the dated index starts");
    let url = format!("{}six/", index.index_url("2019-01-01"));
    let (status, body) = get(&url);
    if status == 502 && body.contains("could not be reached") {
        eprintln!(
            "SKIPPED: the dated index cannot reach {}: {}",
            index.upstream(),
            body.trim()
        );
        return None;
    }
    assert_eq!(status, 200, "{url}: {body}");
    Some(index)
}

/// A plain HTTP/1.0 GET of a URL on 127.0.0.1: status and body.
fn get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).expect("connects");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The version of `six` that `pip download --no-deps six` gets from `index_url`, into a fresh
/// folder, with nothing besides the index (no find-links, no cache, no config).
fn pip_downloads_six(py: &Interpreter, index_url: &str, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(&py.path)
        .args(["-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d"])
        .arg(dir)
        .arg("six")
        .env("PIP_INDEX_URL", index_url)
        // This machine sets PIP_FIND_LINKS, which pip searches besides any index.
        .env("PIP_FIND_LINKS", "")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip download failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0]
        .strip_prefix("six-")
        .map(|rest| rest.split(['-', '.']).take(3).collect::<Vec<_>>().join("."))
        .unwrap_or_else(|| panic!("unexpected file {files:?}"))
}

fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn pip_resolves_as_of_the_date_through_the_dated_index() {
    let Some(index) = dated_index() else {
        return;
    };
    let Some(py) = common::test_python(&Interpreters::discover()) else {
        return;
    };
    let tmp = common::temp_dir("dated-pip");
    let t = Instant::now();
    let dated = pip_downloads_six(&py, &index.index_url("2019-01-01"), &tmp.path().join("a"));
    eprintln!(
        "pip through the dated index: six {dated} in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(dated, "1.12.0");
    assert_eq!(
        pip_downloads_six(&py, &index.index_url("2020-01-01"), &tmp.path().join("b")),
        "1.13.0"
    );
    // The upstream itself, undated, has newer releases.
    let today = pip_downloads_six(&py, &index.upstream(), &tmp.path().join("c"));
    assert!(
        version_tuple(&today) > version_tuple("1.13.0"),
        "six {today} from {}",
        index.upstream()
    );
}

fn version_in(store: &ponder_env::EnvStore, layer: &ponder_env::Layer) -> String {
    let out = layer
        .run(
            store.sandbox(),
            CommandSpec::new(["python", "-c", "import six; print(six.__version__)"])
                .cwd(&layer.worktree),
            Policy::tests(&layer.worktree),
        )
        .expect("sandbox run");
    assert!(out.termination.success(), "{}", out.output);
    out.output.trim().to_string()
}

#[test]
fn a_pip_base_and_a_layer_resolve_as_of_the_date() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    if dated_index().is_none() {
        return;
    }
    let root = common::temp_dir("dated-layer");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };

    // A pip base: the requirements resolve through the dated index, `packages` do not.
    let recipe = EnvRecipe {
        python: py.minor_string(),
        requirements: vec!["six".into()],
        packages: vec!["iniconfig==2.0.0".into()],
        resolve_before: Some("2019-01-01".into()),
        ..EnvRecipe::default()
    };
    let pip = BuildOptions {
        tool: ToolChoice::Pip,
        ..BuildOptions::default()
    };
    let t = Instant::now();
    let base = store.ensure_base(&recipe, &pip).expect("pip base builds");
    eprintln!("pip base in {:.1}s", t.elapsed().as_secs_f64());
    let log = std::fs::read_to_string(base.dir.join("build.log")).unwrap();
    assert!(
        log.contains("through ponder's dated index as of 2019-01-01"),
        "{log}"
    );
    let out = store
        .sandbox()
        .run(
            &CommandSpec::new([
                base.python().display().to_string(),
                "-c".into(),
                "from importlib.metadata import version as v; print(v('six'), v('iniconfig'))"
                    .into(),
            ])
            .cwd(&base.dir),
            &Policy::tests(&base.dir),
        )
        .expect("sandbox run");
    assert_eq!(out.output.trim(), "1.12.0 2.0.0", "{}", out.output);

    // A layer over an empty uv base whose install pulls an unpinned package with pip.
    for (date, old) in [(Some("2019-01-01"), true), (None, false)] {
        let recipe = EnvRecipe {
            python: py.minor_string(),
            install: Some("python -m pip install six".into()),
            resolve_before: date.map(str::to_owned),
            ..EnvRecipe::default()
        };
        let base = store
            .ensure_base(&recipe, &BuildOptions::default())
            .expect("uv base builds");
        let tag = if old { "dated" } else { "undated" };
        let wt = root.path().join(format!("wt-{tag}"));
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join("README"), "nothing to install\n").unwrap();
        common::git_commit_all(&wt);
        let t = Instant::now();
        let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join(tag))
            .unwrap_or_else(|e| panic!("{tag} layer: {e}"));
        eprintln!("{tag} layer in {:.1}s", t.elapsed().as_secs_f64());
        let version = version_in(&store, &layer);
        let log = std::fs::read_to_string(layer.log_path()).unwrap();
        if old {
            assert_eq!(version, "1.12.0", "{log}");
            assert!(log.contains("dated index as of 2019-01-01"), "{log}");
            // The reinstall after a patch resolves the same way.
            store
                .reinstall(&layer, &recipe, &Default::default())
                .expect("reinstall");
            let again = std::fs::read_to_string(layer.dir.join("reinstall.log")).unwrap();
            assert!(again.contains("dated index as of 2019-01-01"), "{again}");
            assert_eq!(version_in(&store, &layer), "1.12.0");
        } else {
            assert!(
                version_tuple(&version) > version_tuple("1.13.0"),
                "six {version}: {log}"
            );
            assert!(!log.contains("dated index"), "{log}");
        }
    }
}
