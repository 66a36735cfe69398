//! Instance layers over real projects: PyPI source distributions unpacked into git work trees,
//! installed editable into a layer over a shared base, with pip and with uv, through the
//! sandbox. Checks that imports resolve to the work tree, that pip sees the base's packages,
//! that the base is never modified, and that root-only pre_install commands are skipped.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ponder_env::{
    BaseEnv, BuildOptions, EnvRecipe, EnvStore, Interpreter, Layer, LayerOptions, Tool, ToolChoice,
};
use ponder_sandbox::{CommandSpec, Policy, Sandbox};

/// Downloads (once, into the shared cache) the sdist of `name==version` through the sandbox,
/// and unpacks it into `dest` as a committed git work tree.
fn sdist_worktree(sandbox: &Sandbox, py: &Interpreter, name: &str, version: &str, dest: &Path) {
    let sdists = common::shared_cache()
        .join("sdists")
        .join(format!("{name}-{version}"));
    std::fs::create_dir_all(&sdists).unwrap();
    let find = || {
        std::fs::read_dir(&sdists)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
    };
    if find().is_none() {
        // pip prepares an sdist's metadata (runs its build backend), so this runs confined too.
        let spec = CommandSpec::new([
            py.path.display().to_string(),
            "-m".into(),
            "pip".into(),
            "download".into(),
            "--no-deps".into(),
            "--no-binary".into(),
            ":all:".into(),
            format!("{name}=={version}"),
            "-d".into(),
            sdists.display().to_string(),
        ])
        .cwd(&sdists)
        .inherit_env(true)
        .env(
            "PIP_CACHE_DIR",
            common::shared_cache()
                .join("downloads/pip")
                .display()
                .to_string(),
        );
        let policy = Policy::tests(&sdists)
            .network(true)
            .writable(common::shared_cache().join("downloads/pip"));
        let out = sandbox
            .run(&spec, &policy)
            .expect("sandbox runs pip download");
        assert!(
            out.termination.success(),
            "pip download failed: {}",
            out.output
        );
    }
    let archive = find().expect("sdist downloaded");
    std::fs::create_dir_all(dest).unwrap();
    common::run(
        Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(dest)
            .arg("--strip-components=1"),
    );
    common::git_commit_all(dest);
}

/// Relative path, size and modification time of every file under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            (
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (m.len(), m.modified().unwrap()),
            )
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
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

fn base_with(store: &EnvStore, py: &Interpreter, packages: &[&str], tool: ToolChoice) -> BaseEnv {
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: packages.iter().map(|s| s.to_string()).collect(),
        ..EnvRecipe::default()
    };
    store
        .ensure_base(
            &recipe,
            &BuildOptions {
                tool,
                ..BuildOptions::default()
            },
        )
        .expect("base builds")
}

#[test]
fn editable_layer_resolves_to_the_work_tree_with_pip_and_uv() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("layer");
    let store = common::store(root.path(), sandbox.clone());
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let base = base_with(&store, &py, &["pytest==7.4.0"], ToolChoice::Auto);
    assert_eq!(base.status.tool, Tool::Uv);
    let before = snapshot(&base.dir);

    let mut timings = Vec::new();
    for (tool, install) in [
        (ToolChoice::Pip, "python -m pip install -e ."),
        (ToolChoice::Pip, "python -m pip install --no-deps -e ."),
        (ToolChoice::Uv, "python -m pip install --no-deps -e ."),
    ] {
        let tag = format!("{tool:?}-{}", install.contains("--no-deps"));
        let wt = root.path().join(format!("wt-{tag}"));
        sdist_worktree(&sandbox, &py, "iniconfig", "2.0.0", &wt);
        let recipe = EnvRecipe {
            python: py.minor_string(),
            packages: vec!["pytest==7.4.0".into()],
            install: Some(install.to_string()),
            ..EnvRecipe::default()
        };
        let opts = LayerOptions {
            tool,
            ..LayerOptions::default()
        };
        let t = Instant::now();
        let layer = store
            .create_layer(
                &base,
                &recipe,
                &wt,
                &root.path().join(format!("layer-{tag}")),
                &opts,
            )
            .unwrap_or_else(|e| panic!("layer ({tag}) failed: {e}"));
        let secs = t.elapsed().as_secs_f64();
        let ran_with = layer.record.commands[0].ran_with.clone().unwrap();
        assert_eq!(ran_with, if tool == ToolChoice::Uv { "uv" } else { "pip" });
        timings.push(format!(
            "{install:?} with {ran_with}: {secs:.2}s (venv {:.2}s), layer size {:.2} MB",
            layer.record.venv_secs,
            ponder_env::disk_usage(&layer.dir) as f64 / 1e6
        ));

        let file = python_says(
            &store,
            &layer,
            "import iniconfig; print(iniconfig.__file__)",
        );
        let wt_real = std::fs::canonicalize(&wt).unwrap();
        assert!(
            Path::new(&file).starts_with(&wt_real),
            "iniconfig imported from {file}, not the work tree {}",
            wt_real.display()
        );
        // Editable: a change in the work tree is what Python sees.
        let init = wt.join("src/iniconfig/__init__.py");
        let mut text = std::fs::read_to_string(&init).unwrap();
        text.push_str("\nPONDER_MARK = 'edited'\n");
        std::fs::write(&init, text).unwrap();
        assert_eq!(
            python_says(
                &store,
                &layer,
                "import iniconfig; print(iniconfig.PONDER_MARK)"
            ),
            "edited"
        );
        // The base's pytest runs in the layer and sees the work tree's package.
        std::fs::write(
            wt.join("test_ponder.py"),
            "import iniconfig\n\ndef test_mark():\n    assert iniconfig.PONDER_MARK == 'edited'\n",
        )
        .unwrap();
        let out = layer
            .run(
                store.sandbox(),
                CommandSpec::shell("pytest -q -p no:cacheprovider test_ponder.py").cwd(&wt),
                Policy::tests(&wt),
            )
            .unwrap();
        assert!(
            out.termination.success(),
            "pytest in the layer: {}",
            out.output
        );
        assert!(out.output.contains("1 passed"), "{}", out.output);
    }
    for t in &timings {
        eprintln!("MEASURED: instance layer for iniconfig 2.0.0 sdist, {t}");
    }
    assert_eq!(
        snapshot(&base.dir),
        before,
        "the base environment was modified"
    );
}

#[test]
fn pip_in_a_layer_sees_the_base_and_leaves_it_alone() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("layer-deps");
    let store = common::store(root.path(), sandbox.clone());
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    // requests 2.27.1 is a setup.py project with four runtime dependencies; the base has them.
    let deps = [
        "urllib3==1.26.18",
        "idna==3.4",
        "charset-normalizer==2.0.12",
        "certifi==2023.7.22",
    ];
    let base = base_with(&store, &py, &deps, ToolChoice::Auto);
    let before = snapshot(&base.dir);
    let wt = root.path().join("requests");
    sdist_worktree(&sandbox, &py, "requests", "2.27.1", &wt);
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: deps.iter().map(|s| s.to_string()).collect(),
        pre_install: vec![
            "apt-get update && apt-get install -y locales".into(),
            "echo 'en_US UTF-8' > /etc/locale.gen".into(),
            "MARK=ponder".into(),
            "echo \"$MARK\" > pre_install_ran.txt".into(),
        ],
        install: Some("python -m pip install -e .".into()),
        ..EnvRecipe::default()
    };
    let t = Instant::now();
    let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .expect("layer builds");
    eprintln!(
        "MEASURED: instance layer for requests 2.27.1 (setup.py, deps in base) with pip: {:.2}s",
        t.elapsed().as_secs_f64()
    );

    // pre_install: root-only commands skipped with reasons, the rest ran in the work tree.
    assert_eq!(
        std::fs::read_to_string(wt.join("pre_install_ran.txt")).unwrap(),
        "ponder\n"
    );
    let skipped: Vec<_> = layer
        .record
        .commands
        .iter()
        .filter(|c| c.skipped.is_some())
        .collect();
    assert_eq!(skipped.len(), 2, "{:?}", layer.record.commands);
    assert!(skipped[0].skipped.as_deref().unwrap().contains("root"));
    let log = std::fs::read_to_string(layer.log_path()).unwrap();
    assert!(log.contains("SKIPPED: apt-get update"), "{log}");

    // The dependencies were found in the base, not installed again.
    assert!(
        log.contains("Requirement already satisfied: urllib3"),
        "{log}"
    );
    let layer_site = &layer.record.site_packages[0];
    let names: Vec<String> = std::fs::read_dir(layer_site)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("urllib3") || n.starts_with("idna")),
        "dependencies were reinstalled into the layer: {names:?}"
    );
    let file = python_says(&store, &layer, "import requests; print(requests.__file__)");
    assert!(
        file.starts_with(&std::fs::canonicalize(&wt).unwrap().display().to_string()),
        "{file}"
    );
    let urllib3 = python_says(&store, &layer, "import urllib3; print(urllib3.__version__)");
    assert_eq!(urllib3, "1.26.18");
    assert_eq!(
        snapshot(&base.dir),
        before,
        "the base environment was modified"
    );

    // A layer folder that is not a layer is never wiped.
    let foreign = root.path().join("not-a-layer");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep").unwrap();
    let err = common::layer(&store, &base, &recipe, &wt, &foreign).unwrap_err();
    assert!(err.to_string().contains("not a ponder layer"), "{err}");
    assert!(foreign.join("precious.txt").exists());
    // Nor may a layer live inside its work tree.
    let err = common::layer(&store, &base, &recipe, &wt, &wt.join("venv")).unwrap_err();
    assert!(err.to_string().contains("inside the work tree"), "{err}");
}

#[test]
fn a_failing_install_reports_the_reason() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("layer-fail");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let base = base_with(&store, &py, &["six==1.16.0"], ToolChoice::Auto);
    let wt = root.path().join("wt");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(
        wt.join("setup.py"),
        "raise SystemExit('ponder: broken setup.py')\n",
    )
    .unwrap();
    common::git_commit_all(&wt);
    let recipe = EnvRecipe {
        python: py.minor_string(),
        install: Some("python setup.py develop".into()),
        ..EnvRecipe::default()
    };
    let err = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ponder: broken setup.py"), "{text}");
    let record: ponder_env::LayerRecord = serde_json::from_slice(
        &std::fs::read(root.path().join("layer/ponder-layer.json")).unwrap(),
    )
    .unwrap();
    assert!(!record.ok);
}

#[test]
fn pinned_pip_keeps_legacy_install_options() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("layer-legacy");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    // The install command scikit-learn's benchmark specs use; pip 25.3 removed the option.
    let recipe = EnvRecipe {
        python: py.minor_string(),
        pip: Some("pip<25.3".into()),
        packages: vec!["setuptools==68.0.0".into(), "wheel".into()],
        install: Some("python -m pip install -v --no-use-pep517 --no-build-isolation -e .".into()),
        ..EnvRecipe::default()
    };
    let base = store
        .ensure_base(&recipe, &BuildOptions::default())
        .expect("base builds");
    let wt = root.path().join("wt");
    std::fs::create_dir_all(wt.join("legacypkg")).unwrap();
    std::fs::write(wt.join("legacypkg/__init__.py"), "WHERE = 'work tree'\n").unwrap();
    std::fs::write(
        wt.join("setup.py"),
        "from setuptools import setup\nsetup(name='legacypkg', version='1.0', packages=['legacypkg'])\n",
    )
    .unwrap();
    common::git_commit_all(&wt);
    let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .expect("legacy editable install works with the pinned pip");
    let version = python_says(&store, &layer, "import pip; print(pip.__version__)");
    assert!(version.starts_with("25."), "pip {version}");
    assert_eq!(
        python_says(&store, &layer, "import legacypkg; print(legacypkg.WHERE)"),
        "work tree"
    );
    // Without the pin the same recipe is a different environment.
    let unpinned = EnvRecipe {
        pip: None,
        ..recipe.clone()
    };
    assert_ne!(
        store
            .plan(&unpinned, &BuildOptions::default())
            .unwrap()
            .hash,
        base.hash
    );
    let bad = EnvRecipe {
        pip: Some("setuptools".into()),
        ..recipe
    };
    assert!(store.plan(&bad, &BuildOptions::default()).is_err());
}

/// The base holds PyPI's jaraco.functools, whose `jaraco` is a namespace package, and the work
/// tree is a project with its own `jaraco/functools` installed with setuptools' legacy `develop`
/// (a path entry, as old SWE-bench repositories are installed; matplotlib's `mpl_toolkits` is the
/// case that broke): the work tree's module must win, as in the harness, where the install
/// replaces the PyPI copy in the one environment. Namespace portions are searched in `sys.path`
/// order, so the base's site-packages must come after the layer's own entries.
#[test]
fn a_legacy_editable_install_shadows_the_base_copy_of_a_namespace_package() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("shadow");
    let store = common::store(root.path(), sandbox.clone());
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let packages = ["jaraco.functools==4.0.1", "setuptools<70", "pip<24.1"];
    let base = base_with(&store, &py, &packages, ToolChoice::Pip);
    let wt = root.path().join("wt");
    std::fs::create_dir_all(wt.join("jaraco/functools")).unwrap();
    std::fs::write(
        wt.join("setup.py"),
        "from setuptools import setup\nsetup(name='jaraco.functools', version='99.0', \
         packages=['jaraco', 'jaraco.functools'], namespace_packages=['jaraco'])\n",
    )
    .unwrap();
    // A pkg_resources-style namespace, as matplotlib 3.3 declares mpl_toolkits.
    std::fs::write(
        wt.join("jaraco/__init__.py"),
        "__import__('pkg_resources').declare_namespace(__name__)\n",
    )
    .unwrap();
    std::fs::write(
        wt.join("jaraco/functools/__init__.py"),
        "WHERE = 'work tree'\n",
    )
    .unwrap();
    common::git_commit_all(&wt);
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        install: Some("python -m pip install --no-use-pep517 --no-build-isolation -e .".into()),
        ..EnvRecipe::default()
    };
    let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .unwrap_or_else(|e| panic!("layer failed: {e}"));
    assert_eq!(
        python_says(
            &store,
            &layer,
            "import jaraco.functools as f; print(getattr(f, 'WHERE', f.__file__))"
        ),
        "work tree"
    );
    // The order that decides namespace portions: the work tree's entry before the base's
    // site-packages (matplotlib 3.3's mpl_toolkits came from the base's PyPI copy otherwise).
    let order = python_says(
        &store,
        &layer,
        &format!(
            "import sys; p = [x.rstrip('/') for x in sys.path]; \
             print(p.index({:?}) < min(i for i, x in enumerate(p) if x.startswith({:?})))",
            std::fs::canonicalize(&wt).unwrap().display().to_string(),
            std::fs::canonicalize(&base.dir)
                .unwrap()
                .display()
                .to_string(),
        ),
    );
    assert_eq!(
        order, "True",
        "the base's site-packages comes before the work tree"
    );
}

#[test]
fn an_isolated_build_in_a_layer_uses_its_own_build_requirements_not_the_base() {
    // pylint 2.15 pins `setuptools~=62.6` for its build: pip then installs the project with
    // `setup.py develop`, which puts the work tree on sys.path. When the base's newer
    // setuptools leaked into pip's isolated build, the install became a PEP 660 editable one
    // (a meta-path finder, the tree not on sys.path), and pylint's own tests failed.
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("isolated");
    let store = common::store(root.path(), sandbox.clone());
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let packages = ["setuptools==75.8.0", "pip<25.3"];
    let base = base_with(&store, &py, &packages, ToolChoice::Pip);
    let wt = root.path().join("wt");
    std::fs::create_dir_all(wt.join("oldbuild")).unwrap();
    std::fs::write(
        wt.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools~=62.6\", \"wheel\"]\nbuild-backend = \"setuptools.build_meta\"\n",
    )
    .unwrap();
    std::fs::write(
        wt.join("setup.py"),
        "from setuptools import setup\nsetup(name='oldbuild', version='1.0', packages=['oldbuild'])\n",
    )
    .unwrap();
    std::fs::write(wt.join("oldbuild/__init__.py"), "").unwrap();
    common::git_commit_all(&wt);
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        install: Some("python -m pip install -e .".into()),
        build_constraints: vec!["setuptools<80".into()],
        ..EnvRecipe::default()
    };
    let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .unwrap_or_else(|e| panic!("layer failed: {e}"));
    let log = std::fs::read_to_string(layer.log_path()).unwrap();
    assert!(
        log.contains("setup.py develop"),
        "the build should use setuptools 62.6, which installs with setup.py develop:\n{log}"
    );
    let on_path = python_says(
        &store,
        &layer,
        &format!(
            "import sys; print({:?} in [p.rstrip('/') for p in sys.path])",
            std::fs::canonicalize(&wt).unwrap().display().to_string()
        ),
    );
    assert_eq!(
        on_path, "True",
        "the work tree is on sys.path, as develop puts it"
    );
}
