//! EnvRecipe::detect on ordinary repositories: requirement files (with includes and local
//! lines), pyproject metadata, setup.py's python_requires; then a detected recipe built end to
//! end with the interpreters and sandbox of this machine.

mod common;

use std::path::Path;

use ponder_env::{BuildOptions, EnvRecipe, Interpreters};
use ponder_sandbox::{CommandSpec, Policy};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn detects_pyproject_requirements_and_python() {
    let pythons = Interpreters::discover();
    let fits: Vec<_> = pythons
        .all()
        .iter()
        .filter(|i| i.minor() >= (3, 8) && i.minor() < (3, 12))
        .map(|i| i.minor())
        .collect();
    let Some(best) = fits.iter().max() else {
        eprintln!(
            "SKIPPED: no Python between 3.8 and 3.11 (found {})",
            pythons.summary()
        );
        return;
    };
    let tmp = common::temp_dir("detect");
    let repo = tmp.path();
    write(
        repo,
        "pyproject.toml",
        r#"[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "demo"
version = "0.1"
requires-python = ">=3.8,<3.12"
dependencies = ["attrs>=22"]

[project.optional-dependencies]
test = ["pytest>=7", "hypothesis"]
"#,
    );
    write(
        repo,
        "requirements.txt",
        "# runtime\n-r requirements/base.txt\n-e .\nattrs==23.1.0  # pinned\n",
    );
    write(repo, "requirements/base.txt", "six==1.16.0\n\n");
    let recipe = EnvRecipe::detect(repo, &pythons).unwrap();
    assert_eq!(recipe.python, format!("{}.{}", best.0, best.1));
    assert_eq!(recipe.requirements, ["six==1.16.0", "attrs==23.1.0"]);
    assert_eq!(
        recipe.install.as_deref(),
        Some("python -m pip install -e '.[test]'")
    );
    assert!(
        recipe.packages.is_empty(),
        "pytest is declared by the test extra: {:?}",
        recipe.packages
    );
    assert!(
        recipe
            .notes
            .iter()
            .any(|n| n.contains("refers to the work tree")),
        "{:?}",
        recipe.notes
    );
    recipe.validate().unwrap();

    // setup.py only, nothing declares pytest.
    let tmp2 = common::temp_dir("detect-setup");
    write(
        tmp2.path(),
        "setup.py",
        "from setuptools import setup\nsetup(name='x', python_requires='>=3.6', install_requires=['six'])\n",
    );
    let recipe = EnvRecipe::detect(tmp2.path(), &pythons).unwrap();
    let newest = pythons
        .all()
        .iter()
        .filter(|i| i.version.0 == 3)
        .map(|i| i.minor())
        .max()
        .unwrap();
    assert_eq!(recipe.python, format!("{}.{}", newest.0, newest.1));
    assert_eq!(recipe.packages, ["pytest"]);
    assert_eq!(
        recipe.install.as_deref(),
        Some("python -m pip install -e .")
    );

    // A requirement that cannot be met by any interpreter is a clear error.
    let tmp3 = common::temp_dir("detect-none");
    write(
        tmp3.path(),
        "pyproject.toml",
        "[project]\nname='x'\nrequires-python='>=4.0'\n",
    );
    let err = EnvRecipe::detect(tmp3.path(), &pythons)
        .unwrap_err()
        .to_string();
    assert!(err.contains(">=4.0") && err.contains("found"), "{err}");
}

#[test]
fn detected_recipe_builds_and_installs_a_real_project() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("detect-e2e");
    let store = common::store(root.path(), sandbox);
    let wt = root.path().join("project");
    write(
        &wt,
        "pyproject.toml",
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"demoproj\"\nversion = \"0.1\"\nrequires-python = \">=3.8\"\ndependencies = [\"six\"]\n",
    );
    write(&wt, "requirements.txt", "six==1.16.0\n");
    write(&wt, "src/demoproj/__init__.py", "import six\nANSWER = 42\n");
    write(
        &wt,
        "tests/test_demo.py",
        "import demoproj\n\ndef test_answer():\n    assert demoproj.ANSWER == 42\n",
    );
    common::git_commit_all(&wt);
    let recipe = EnvRecipe::detect(&wt, store.interpreters()).unwrap();
    eprintln!("detected: {recipe:?}");
    let base = store
        .ensure_base(&recipe, &BuildOptions::default())
        .expect("base builds");
    let layer = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .expect("layer builds");
    let out = layer
        .run(
            store.sandbox(),
            CommandSpec::shell("python -m pytest -q -p no:cacheprovider tests").cwd(&wt),
            Policy::tests(&wt),
        )
        .unwrap();
    assert!(out.termination.success(), "{}", out.output);
    assert!(out.output.contains("1 passed"), "{}", out.output);
}
