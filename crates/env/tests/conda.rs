//! conda_to_pip on a realistic development environment.yml (in the style of matplotlib's and
//! xarray's) and on the space-separated lists SWE-bench specs use; the mapped lines must be
//! valid pip requirements, which pip's own parser checks.

mod common;

use std::process::Command;

use ponder_env::{Interpreters, conda_to_pip};

const ENVIRONMENT_YML: &str = r#"# Development environment; create it with
#   conda env create -f environment.yml
---
name: plotlib-dev
channels:
  - conda-forge
  - defaults
dependencies:
  # runtime
  - python=3.8
  - cairocffi
  - c-compiler
  - cxx-compiler
  - cycler>=0.10.0
  - fonttools>=4.22.0
  - kiwisolver>=1.0.1
  - conda-forge::numpy=1.21
  - pillow>=6.2
  - pkg-config
  - pygobject
  - pyparsing
  - pyqt
  - python-dateutil>=2.1
  - qhull=2020.2
  - freetype=2.6.1
  - setuptools_scm
  - wxpython
  - mkl
  # documentation
  - graphviz
  - ipython
  - numpydoc>=0.8
  - pydata-sphinx-theme=0.8.0=pyhd8ed1ab_0
  - sphinx>=1.8.1,!=2.0.0
  - sphinx-gallery >=0.10
  - pip
  - pip:
      - mpl-sphinx-theme
      - sphinxcontrib-svg2pdfconverter>=1.1.0
  # testing
  - coverage
  - flake8>=3.8
  - matplotlib-base 3.5.*
  - nbconvert[execute]!=6.0.0,!=6.0.1
  - pandas!=0.25.0
  - pytables
  - pytest!=4.6.0,!=5.4.0
  - pytest-xdist
  - ffmpeg
  - dask-core
"#;

#[test]
fn maps_a_realistic_environment_yml() {
    let m = conda_to_pip(ENVIRONMENT_YML).expect("parses");
    assert_eq!(m.python.as_deref(), Some("3.8"));
    let expected = [
        "cairocffi",
        "cycler>=0.10.0",
        "fonttools>=4.22.0",
        "kiwisolver>=1.0.1",
        "numpy==1.21.*",
        "pillow>=6.2",
        "pyparsing",
        "PyQt5",
        "python-dateutil>=2.1",
        "setuptools_scm",
        "ipython",
        "numpydoc>=0.8",
        "pydata-sphinx-theme==0.8.0",
        "sphinx>=1.8.1,!=2.0.0",
        "sphinx-gallery>=0.10",
        "mpl-sphinx-theme",
        "sphinxcontrib-svg2pdfconverter>=1.1.0",
        "coverage",
        "flake8>=3.8",
        "matplotlib==3.5.*",
        "nbconvert[execute]!=6.0.0,!=6.0.1",
        "pandas!=0.25.0",
        "tables",
        "pytest!=4.6.0,!=5.4.0",
        "pytest-xdist",
        "dask",
    ];
    assert_eq!(m.requirements, expected);
    let dropped: Vec<&str> = m.dropped.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "python=3.8",
        "c-compiler",
        "cxx-compiler",
        "pkg-config",
        "qhull=2020.2",
        "freetype=2.6.1",
        "mkl",
        "pip",
    ] {
        assert!(dropped.contains(&name), "{name} not dropped: {dropped:?}");
    }
    let unmapped: Vec<&str> = m.unmapped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(unmapped, ["pygobject", "wxpython", "graphviz", "ffmpeg"]);
    let blocker = m.blocker().unwrap();
    assert!(blocker.contains("graphviz (system program"), "{blocker}");
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("channels ignored: conda-forge, defaults"))
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("pytables is tables on PyPI"))
    );
    assert!(m.notes.iter().any(|n| n.contains("build string")));

    // Every mapped line must be a valid requirement for pip itself.
    let pythons = Interpreters::discover();
    let Some(py) = pythons.newest_at_least((3, 8)) else {
        eprintln!("SKIPPED (pip parse check only): no Python 3.8+ found");
        return;
    };
    let check = "import sys\nfrom pip._vendor.packaging.requirements import Requirement\n\
                 for line in sys.argv[1:]:\n    Requirement(line)\nprint(len(sys.argv) - 1)\n";
    let out = common::run(
        Command::new(&py.path)
            .arg("-c")
            .arg(check)
            .args(&m.requirements),
    );
    assert_eq!(out.trim(), expected.len().to_string());
}

#[test]
fn maps_the_package_lists_of_benchmark_specs() {
    let m = conda_to_pip(
        "'numpy==1.19.2' 'scipy==1.5.2' 'cython==3.0.10' pytest 'pandas<2.0.0' 'matplotlib<3.9.0' setuptools pytest joblib threadpoolctl",
    )
    .unwrap();
    assert_eq!(
        m.requirements,
        [
            "numpy==1.19.2",
            "scipy==1.5.2",
            "cython==3.0.10",
            "pytest",
            "pandas<2.0.0",
            "matplotlib<3.9.0",
            "setuptools",
            "joblib",
            "threadpoolctl"
        ]
    );
    assert!(m.unmapped.is_empty() && m.dropped.is_empty());
    assert_eq!(
        conda_to_pip("setuptools==38.2.4").unwrap().requirements,
        ["setuptools==38.2.4"]
    );
    let err = conda_to_pip("name: broken\ndependencies:\n  - [unclosed\n").unwrap_err();
    assert!(err.contains("does not parse"), "{err}");
}
