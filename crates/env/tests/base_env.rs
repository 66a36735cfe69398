//! Base environments built for real: pinned PyPI packages into a real interpreter through the
//! bubblewrap sandbox; reuse, hashing, concurrent builders, failed and interrupted builds, and
//! the list/remove API.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ponder_env::{
    BuildOptions, EnvError, EnvRecipe, EnvState, EnvStore, Layer, LayerOptions, ToolChoice,
};
use ponder_sandbox::{CommandSpec, Policy};

fn pinned_recipe(python: &str) -> EnvRecipe {
    EnvRecipe {
        python: python.to_string(),
        requirements: vec![
            "# pinned test set".to_string(),
            "six==1.16.0".to_string(),
            "iniconfig==2.0.0".to_string(),
        ],
        packages: vec!["pytest==7.4.0".to_string()],
        ..EnvRecipe::default()
    }
}

/// An empty committed work tree and a layer over `base` for it.
fn empty_layer(store: &EnvStore, base: &ponder_env::BaseEnv, root: &Path) -> Layer {
    let wt = root.join("worktree");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(wt.join("README"), "empty project\n").unwrap();
    common::git_commit_all(&wt);
    store
        .create_layer(
            base,
            &EnvRecipe::new(&base.status.python),
            &wt,
            &root.join("layer"),
            &LayerOptions::default(),
        )
        .expect("layer over the base")
}

fn python_says(store: &EnvStore, layer: &Layer, code: &str) -> String {
    let out = layer
        .run(
            store.sandbox(),
            CommandSpec::new(["python", "-c", code]).cwd(&layer.worktree),
            Policy::tests(&layer.worktree),
        )
        .expect("sandbox run");
    assert!(out.termination.success(), "python failed: {}", out.output);
    out.output.trim().to_string()
}

#[test]
fn builds_once_reuses_and_rehashes() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("base");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = pinned_recipe(&py.minor_string());

    let t = Instant::now();
    let base = store
        .ensure_base(&recipe, &BuildOptions::default())
        .expect("base env builds");
    let build_time = t.elapsed();
    assert!(!base.reused);
    assert_eq!(base.status.state, EnvState::Ready);
    assert_eq!(base.status.python, py.version_string());
    assert!(
        base.status.size_bytes > 1_000_000,
        "size {}",
        base.status.size_bytes
    );
    assert!(base.log_path().is_file());
    let log = std::fs::read_to_string(base.log_path()).unwrap();
    assert!(
        log.contains("six==1.16.0"),
        "log lacks the requirement: {log}"
    );
    eprintln!(
        "MEASURED: base env (python {}, tool {}, 3 pinned packages + deps) built in {:.2}s, \
         {:.1} MB",
        base.status.python,
        base.status.tool,
        build_time.as_secs_f64(),
        base.status.size_bytes as f64 / 1e6
    );

    // The layer's activation variables reach the base's packages.
    let layer = empty_layer(&store, &base, root.path());
    assert_eq!(
        python_says(&store, &layer, "import six; print(six.__version__)"),
        "1.16.0"
    );
    assert_eq!(
        python_says(&store, &layer, "import pytest; print(pytest.__version__)"),
        "7.4.0"
    );
    let six_file = python_says(&store, &layer, "import six; print(six.__file__)");
    assert!(
        Path::new(&six_file).starts_with(&base.dir),
        "six comes from {six_file}, not the base {}",
        base.dir.display()
    );
    // Console scripts of the base run with the layer's interpreter.
    let out = layer
        .run(
            store.sandbox(),
            CommandSpec::shell("pytest --version 2>&1; head -1 \"$(command -v pytest)\"")
                .cwd(&layer.worktree),
            Policy::tests(&layer.worktree),
        )
        .unwrap();
    assert!(out.termination.success(), "{}", out.output);
    assert!(out.output.contains("7.4.0"), "{}", out.output);
    assert!(
        out.output.contains(&layer.python().display().to_string()),
        "pytest's shebang should name the layer's python: {}",
        out.output
    );

    // Second request: reused, fast, same folder.
    let t = Instant::now();
    let again = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap();
    let reuse_time = t.elapsed();
    assert!(again.reused);
    assert_eq!(again.hash, base.hash);
    assert!(
        reuse_time < Duration::from_secs(2),
        "reuse took {reuse_time:?}"
    );
    eprintln!(
        "MEASURED: reuse of a ready base env took {:.1} ms",
        reuse_time.as_secs_f64() * 1e3
    );

    // Any change of a pin is a different environment; comments and blank lines are not.
    let mut changed = recipe.clone();
    changed.requirements[1] = "six==1.15.0".to_string();
    let opts = BuildOptions::default();
    assert_ne!(store.plan(&changed, &opts).unwrap().hash, base.hash);
    let mut cosmetic = recipe.clone();
    cosmetic.requirements.insert(0, "".to_string());
    cosmetic.notes.push("a note".to_string());
    assert_eq!(store.plan(&cosmetic, &opts).unwrap().hash, base.hash);
    let pip_plan = store
        .plan(
            &recipe,
            &BuildOptions {
                tool: ToolChoice::Pip,
                ..BuildOptions::default()
            },
        )
        .unwrap();
    assert_ne!(pip_plan.hash, base.hash, "the tool is part of the identity");

    // list / rm.
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, base.hash);
    assert_eq!(listed[0].state, EnvState::Ready);
    assert_eq!(
        listed[0].python.as_deref(),
        Some(py.version_string().as_str())
    );
    assert!(listed[0].size_bytes > 0 && listed[0].created_unix.is_some());
    assert!(store.remove(Some("zzzz")).is_err());
    let removed = store.remove(Some(&base.hash[..6])).unwrap();
    assert_eq!(removed, vec![base.hash.clone()]);
    assert!(store.list().unwrap().is_empty());
    assert!(!base.dir.exists());
}

#[test]
fn concurrent_requests_build_once() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("concurrent");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: vec!["iniconfig==2.0.0".to_string()],
        ..EnvRecipe::default()
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| store.ensure_base(&recipe, &BuildOptions::default())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let envs: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("both succeed"))
        .collect();
    assert_eq!(envs[0].hash, envs[1].hash);
    let built = envs.iter().filter(|e| !e.reused).count();
    assert_eq!(
        built, 1,
        "exactly one thread builds, the other waits and reuses"
    );
    let log = std::fs::read_to_string(envs[0].log_path()).unwrap();
    assert_eq!(log.matches("=== [create venv] $").count(), 1, "{log}");
    let waited = envs.iter().find(|e| e.reused).unwrap();
    eprintln!(
        "MEASURED: concurrent request waited {:.2}s for the other builder",
        waited.elapsed.as_secs_f64()
    );
}

#[test]
fn failing_build_is_recorded_and_remembered() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("failing");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: vec!["ponder-does-not-exist==0.0.1".to_string()],
        ..EnvRecipe::default()
    };
    let err = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap_err();
    let EnvError::BuildFailed { hash, reason, log } = &err else {
        panic!("expected BuildFailed, got {err}");
    };
    assert!(reason.contains("ponder-does-not-exist"), "reason: {reason}");
    assert!(err.to_string().contains("ponder-does-not-exist"), "{err}");
    let log_text = std::fs::read_to_string(log).unwrap();
    assert!(log_text.contains("ponder-does-not-exist"), "{log_text}");
    let status = store.status(hash).unwrap();
    assert_eq!(status.state, EnvState::Failed);
    assert!(
        status
            .reason
            .as_deref()
            .unwrap()
            .contains("ponder-does-not-exist")
    );
    eprintln!("failure reason as reported: {reason}");

    // Remembered: the next request fails at once without running anything.
    let t = Instant::now();
    let again = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap_err();
    assert!(
        matches!(again, EnvError::PreviouslyFailed { .. }),
        "{again}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(again.to_string().contains("ponder-does-not-exist"));
    assert_eq!(store.list().unwrap()[0].state, EnvState::Failed);

    // Forcing tries again (and fails again, for the same reason).
    let forced = store
        .ensure_base(
            &recipe,
            &BuildOptions {
                force: true,
                ..BuildOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(forced, EnvError::BuildFailed { .. }), "{forced}");

    // A failure recorded by an older builder (one that knew fewer ways to build) is tried again.
    let status_path = store.envs_dir().join(hash).join("status.json");
    let mut recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap();
    assert_eq!(recorded["builder"], ponder_env::BUILDER_VERSION);
    recorded["builder"] = serde_json::json!(0);
    std::fs::write(&status_path, recorded.to_string()).unwrap();
    let retried = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap_err();
    assert!(matches!(retried, EnvError::BuildFailed { .. }), "{retried}");
}

#[test]
fn interrupted_build_is_rebuilt() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("interrupted");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: vec!["six==1.16.0".to_string()],
        ..EnvRecipe::default()
    };
    let plan = store.plan(&recipe, &BuildOptions::default()).unwrap();
    // What a killed builder leaves: a venv folder with some files and no completion marker.
    std::fs::create_dir_all(plan.dir.join("venv/bin")).unwrap();
    std::fs::write(plan.dir.join("venv/bin/python"), "half written").unwrap();
    std::fs::write(plan.dir.join("build.log"), "killed\n").unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, EnvState::Interrupted);

    let base = store
        .ensure_base(&recipe, &BuildOptions::default())
        .expect("rebuilt");
    assert!(!base.reused, "an interrupted build must not be reused");
    assert_eq!(base.status.state, EnvState::Ready);
    assert_eq!(base.hash, plan.hash);
    let six = base.status.site_packages[0].join("six.py");
    assert!(six.is_file(), "{} missing", six.display());

    // A status left at "building" by a dead builder is treated the same way.
    let mut status = base.status.clone();
    status.state = EnvState::Building;
    std::fs::write(
        base.dir.join("status.json"),
        serde_json::to_vec(&status).unwrap(),
    )
    .unwrap();
    assert_eq!(store.list().unwrap()[0].state, EnvState::Interrupted);
    let rebuilt = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap();
    assert!(!rebuilt.reused);
    assert_eq!(rebuilt.status.state, EnvState::Ready);

    // A status written by an older ponder (another recipe format) is listed as outdated and
    // never reused.
    let mut old = serde_json::to_value(&rebuilt.status).unwrap();
    old["format"] = serde_json::json!(ponder_env::store::RECIPE_FORMAT - 1);
    std::fs::write(
        rebuilt.dir.join("status.json"),
        serde_json::to_vec(&old).unwrap(),
    )
    .unwrap();
    assert_eq!(store.list().unwrap()[0].state, EnvState::Outdated);
    assert_eq!(store.list().unwrap()[0].state.to_string(), "outdated");
    let renewed = store
        .ensure_base(&recipe, &BuildOptions::default())
        .unwrap();
    assert!(!renewed.reused);
    assert_eq!(store.list().unwrap()[0].state, EnvState::Ready);

    // `rm` of everything.
    assert_eq!(store.remove(None).unwrap(), vec![rebuilt.hash.clone()]);
    assert!(store.list().unwrap().is_empty());
}
