//! Mapping conda package lists onto pip requirements, where that is possible.
//!
//! Conda specs name packages from a different registry: some are the same project under the
//! same name, some under another name (`pytables` is `tables` on PyPI), some are parts of the
//! toolchain that a pip environment gets elsewhere (`python` itself, compilers, BLAS), and some
//! are system programs pip cannot provide at all (`graphviz`, `ffmpeg`). This module sorts them
//! into those groups and translates version syntax (`numpy=1.19` means any 1.19.x), so the
//! caller can build what maps and say "cannot build: ..." about the rest.

use serde::{Deserialize, Serialize};
use yaml_rust2::{Yaml, YamlLoader};

/// The result of a mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondaMapping {
    /// pip requirement lines, in the order of the input.
    pub requirements: Vec<String>,
    /// The Python version the spec asks for (`python=3.9` -> "3.9"), if any.
    pub python: Option<String>,
    /// Packages left out on purpose, with why (toolchain or libraries a pip environment does
    /// not need).
    pub dropped: Vec<(String, String)>,
    /// Packages pip cannot provide, with why. Non-empty means the environment will lack them.
    pub unmapped: Vec<(String, String)>,
    /// Other remarks (renames, build strings removed, channels ignored).
    pub notes: Vec<String>,
}

impl CondaMapping {
    /// "cannot build without: graphviz (system program ...); ffmpeg (...)", or `None`.
    pub fn blocker(&self) -> Option<String> {
        if self.unmapped.is_empty() {
            return None;
        }
        let items: Vec<String> = self
            .unmapped
            .iter()
            .map(|(name, why)| format!("{name} ({why})"))
            .collect();
        Some(format!(
            "conda packages with no pip equivalent: {}",
            items.join("; ")
        ))
    }
}

/// Conda names whose PyPI project is called differently.
const RENAMES: &[(&str, &str)] = &[
    ("matplotlib-base", "matplotlib"),
    ("pytables", "tables"),
    ("pytorch", "torch"),
    ("pytorch-cpu", "torch"),
    ("pyqt", "PyQt5"),
    ("py-opencv", "opencv-python"),
    ("opencv", "opencv-python"),
    ("msgpack-python", "msgpack"),
    ("dask-core", "dask"),
    ("numpy-base", "numpy"),
    ("python-graphviz", "graphviz"),
    ("ruamel_yaml", "ruamel.yaml"),
    ("jpype1", "JPype1"),
    ("pywavelets", "PyWavelets"),
    ("tensorflow-base", "tensorflow"),
    ("py-xgboost", "xgboost"),
    ("pyarrow-core", "pyarrow"),
    ("beautifulsoup", "beautifulsoup4"),
    ("gitpython", "GitPython"),
    ("typing-extensions", "typing_extensions"),
    // PyPI's `iris` is a placeholder that raises on import; conda's is SciTools Iris.
    ("iris", "scitools-iris"),
];

/// Toolchain and native libraries: a pip environment gets them from the host, from the
/// interpreter, or bundled inside binary wheels.
const DROPPED: &[(&str, &str)] = &[
    ("python", "the interpreter is chosen separately"),
    ("pip", "every environment has pip"),
    ("compilers", "compiler toolchain comes from the host"),
    ("c-compiler", "compiler toolchain comes from the host"),
    ("cxx-compiler", "compiler toolchain comes from the host"),
    ("fortran-compiler", "compiler toolchain comes from the host"),
    ("gcc", "compiler toolchain comes from the host"),
    ("gxx", "compiler toolchain comes from the host"),
    ("gcc_linux-64", "compiler toolchain comes from the host"),
    ("gxx_linux-64", "compiler toolchain comes from the host"),
    ("gfortran", "compiler toolchain comes from the host"),
    (
        "gfortran_linux-64",
        "compiler toolchain comes from the host",
    ),
    ("make", "build tool comes from the host"),
    ("pkg-config", "build tool comes from the host"),
    ("mkl", "BLAS is bundled in numpy/scipy wheels"),
    ("mkl-include", "BLAS is bundled in numpy/scipy wheels"),
    ("mkl-devel", "BLAS is bundled in numpy/scipy wheels"),
    (
        "mkl_fft",
        "conda's MKL FFT build; numpy wheels bring their own FFT",
    ),
    (
        "mkl_random",
        "conda's MKL build; numpy wheels bring their own",
    ),
    ("blas", "BLAS is bundled in numpy/scipy wheels"),
    ("libblas", "BLAS is bundled in numpy/scipy wheels"),
    ("libcblas", "BLAS is bundled in numpy/scipy wheels"),
    ("liblapack", "BLAS is bundled in numpy/scipy wheels"),
    ("openblas", "BLAS is bundled in numpy/scipy wheels"),
    ("libopenblas", "BLAS is bundled in numpy/scipy wheels"),
    ("nomkl", "conda's BLAS selector"),
    ("intel-openmp", "bundled in the wheels that need it"),
    ("llvm-openmp", "bundled in the wheels that need it"),
    ("_libgcc_mutex", "conda runtime detail"),
    ("_openmp_mutex", "conda runtime detail"),
    ("libgcc-ng", "system C runtime"),
    ("libstdcxx-ng", "system C++ runtime"),
    ("libgfortran-ng", "bundled in the wheels that need it"),
    ("ca-certificates", "the host's certificates are used"),
    ("openssl", "the interpreter's own"),
    ("sqlite", "the interpreter's own"),
    ("tk", "the interpreter's own"),
    ("zlib", "the interpreter's own"),
    ("xz", "the interpreter's own"),
    ("bzip2", "the interpreter's own"),
    ("libffi", "the interpreter's own"),
    ("readline", "the interpreter's own"),
    ("ncurses", "the interpreter's own"),
    (
        "tzdata",
        "system time zone data (the PyPI tzdata is a different package)",
    ),
    ("freetype", "bundled in the matplotlib/pillow wheels"),
    ("libpng", "bundled in the matplotlib/pillow wheels"),
    ("jpeg", "bundled in the pillow wheels"),
    ("libjpeg-turbo", "bundled in the pillow wheels"),
    ("libtiff", "bundled in the pillow wheels"),
    ("qhull", "bundled in the matplotlib wheels"),
    ("hdf5", "bundled in the h5py/tables wheels"),
    ("libnetcdf", "bundled in the netCDF4 wheels"),
    ("geos", "bundled in the shapely wheels"),
    ("icu", "system library"),
    ("expat", "system library"),
    ("libxml2", "bundled in the lxml wheels"),
    ("libxslt", "bundled in the lxml wheels"),
    (
        "cairo",
        "system library (install it on the host if cairo-based tests matter)",
    ),
    ("pango", "system library"),
    ("libiconv", "system library"),
    ("yaml", "libyaml is bundled in the PyYAML wheels"),
];

/// Programs and large native stacks pip cannot install.
const UNMAPPABLE: &[(&str, &str)] = &[
    (
        "graphviz",
        "system program `dot`; install it on the host (apt: graphviz)",
    ),
    (
        "ffmpeg",
        "system program; install it on the host (apt: ffmpeg)",
    ),
    (
        "imagemagick",
        "system program; install it on the host (apt: imagemagick)",
    ),
    (
        "ghostscript",
        "system program `gs`; install it on the host (apt: ghostscript)",
    ),
    (
        "inkscape",
        "system program; install it on the host (apt: inkscape)",
    ),
    (
        "pandoc",
        "system program; install it on the host (apt: pandoc)",
    ),
    (
        "texlive-core",
        "TeX distribution; install it on the host (apt: texlive)",
    ),
    (
        "poppler",
        "system library and tools; install on the host (apt: poppler-utils)",
    ),
    ("gtk3", "GTK; install on the host (apt: libgtk-3-dev)"),
    ("gtk4", "GTK; install on the host (apt: libgtk-4-dev)"),
    (
        "pygobject",
        "needs GObject introspection from the host (apt: python3-gi, gir1.2-*)",
    ),
    (
        "wxpython",
        "no Linux wheels on PyPI; building it needs GTK development files",
    ),
    (
        "gdal",
        "needs libgdal from the host (apt: libgdal-dev) to build the pip package",
    ),
    (
        "proj",
        "system library; install it on the host (apt: proj-bin libproj-dev)",
    ),
    (
        "nodejs",
        "not a Python package; install Node.js on the host",
    ),
    ("r-base", "not a Python package"),
    ("git", "system program; comes from the host"),
    ("cmake-format", "conda packaging of a tool; not mapped"),
];

fn lookup<'a>(table: &'a [(&str, &str)], name: &str) -> Option<&'a str> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Maps a conda `environment.yml` text, or a space-separated conda package list such as
/// `numpy scipy 'pandas<2.0.0' cython=0.29`, onto pip requirements.
pub fn conda_to_pip(input: &str) -> Result<CondaMapping, String> {
    let mut out = CondaMapping::default();
    let looks_like_yaml = input.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with("dependencies:") || t.starts_with("channels:") || t.starts_with("name:")
    });
    if looks_like_yaml {
        map_environment_yml(input, &mut out)?;
    } else {
        let words = shlex::split(input).ok_or_else(|| {
            format!("cannot split the package list {input:?} (unbalanced quotes)")
        })?;
        for word in words {
            map_spec(&word, &mut out);
        }
    }
    Ok(out)
}

fn map_environment_yml(text: &str, out: &mut CondaMapping) -> Result<(), String> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| format!("environment.yml does not parse: {e}"))?;
    let doc = docs
        .first()
        .ok_or_else(|| "environment.yml is empty".to_string())?;
    if let Some(channels) = doc["channels"].as_vec() {
        let names: Vec<&str> = channels.iter().filter_map(Yaml::as_str).collect();
        if !names.is_empty() {
            out.notes
                .push(format!("conda channels ignored: {}", names.join(", ")));
        }
    }
    let deps = match &doc["dependencies"] {
        Yaml::Array(items) => items,
        Yaml::BadValue | Yaml::Null => {
            return Err("environment.yml has no `dependencies` list".to_string());
        }
        _ => return Err("environment.yml `dependencies` is not a list".to_string()),
    };
    for item in deps {
        match item {
            Yaml::String(spec) => map_spec(spec, out),
            Yaml::Hash(map) => {
                for (key, value) in map {
                    let key = key.as_str().unwrap_or_default();
                    if key == "pip" {
                        for pip_req in value.as_vec().map(Vec::as_slice).unwrap_or_default() {
                            if let Some(line) = pip_req.as_str() {
                                push_unique(&mut out.requirements, line.trim().to_string());
                            }
                        }
                    } else {
                        out.unmapped.push((
                            key.to_string(),
                            "unknown section in dependencies".to_string(),
                        ));
                    }
                }
            }
            other => out
                .notes
                .push(format!("ignored dependency entry {other:?}")),
        }
    }
    Ok(())
}

fn push_unique(list: &mut Vec<String>, line: String) {
    if !line.is_empty() && !list.contains(&line) {
        list.push(line);
    }
}

/// One conda spec: `[channel::]name[ version[ build]]` or `name=version[=build]` or
/// `name>=1,<2`.
fn map_spec(raw: &str, out: &mut CondaMapping) {
    let spec = raw.split('#').next().unwrap_or_default().trim();
    if spec.is_empty() {
        return;
    }
    let spec = match spec.rsplit_once("::") {
        Some((_channel, rest)) => rest.trim(),
        None => spec,
    };
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let (name, rest) = spec.split_at(name_end);
    if name.is_empty() {
        out.unmapped
            .push((raw.to_string(), "not a package spec".to_string()));
        return;
    }
    // pip extras ("name[extra]") pass through untouched.
    let (extras, rest) = match rest.strip_prefix('[') {
        Some(r) => match r.split_once(']') {
            Some((e, tail)) => (format!("[{e}]"), tail),
            None => (String::new(), rest),
        },
        None => (String::new(), rest),
    };
    let version = translate_version(rest.trim(), name, out);

    if name.eq_ignore_ascii_case("python") {
        if let Some(v) = rest
            .trim()
            .trim_start_matches(['=', '>', '<', '~', ' '])
            .split([',', '=', ' ', '*'])
            .next()
            .filter(|v| !v.is_empty())
        {
            let minor: Vec<&str> = v.split('.').take(2).collect();
            out.python = Some(minor.join("."));
        }
        out.dropped.push((
            spec.to_string(),
            lookup(DROPPED, "python").unwrap_or("").to_string(),
        ));
        return;
    }
    if let Some(why) = lookup(DROPPED, name) {
        out.dropped.push((spec.to_string(), why.to_string()));
        return;
    }
    if let Some(why) = lookup(UNMAPPABLE, name) {
        out.unmapped.push((spec.to_string(), why.to_string()));
        return;
    }
    let Some(version) = version else {
        out.unmapped.push((
            spec.to_string(),
            "version constraint has no pip equivalent".to_string(),
        ));
        return;
    };
    let pip_name = match lookup(RENAMES, name) {
        Some(renamed) => {
            out.notes.push(format!("{name} is {renamed} on PyPI"));
            renamed.to_string()
        }
        None => name.to_string(),
    };
    push_unique(
        &mut out.requirements,
        format!("{pip_name}{extras}{version}"),
    );
}

/// Conda version syntax to pip's: `=1.19` -> `==1.19.*`, `=1.19.2` -> `==1.19.2`,
/// ` 1.19.*` -> `==1.19.*`, `>=1.2,<2` unchanged, `=1.2=py39_0` drops the build string.
/// `None` when it has no pip form (alternatives with `|`).
fn translate_version(rest: &str, name: &str, out: &mut CondaMapping) -> Option<String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(String::new());
    }
    if rest.contains('|') {
        return None;
    }
    // "1.19.* py39_0" (space-separated version and build, as in environment.yml).
    let mut parts = rest.split_whitespace();
    let first = parts.next().unwrap_or_default();
    if parts.next().is_some() {
        out.notes
            .push(format!("{name}: conda build string dropped from {rest:?}"));
    }
    let first = first.trim();
    if first.starts_with("==")
        || first.starts_with(">=")
        || first.starts_with("<=")
        || first.starts_with("!=")
        || first.starts_with("~=")
        || first.starts_with('>')
        || first.starts_with('<')
    {
        return Some(first.to_string());
    }
    // Single '=': fuzzy conda match, possibly followed by "=build".
    let bare = first.strip_prefix('=').unwrap_or(first);
    let (version, build) = match bare.split_once('=') {
        Some((v, b)) => (v, Some(b)),
        None => (bare, None),
    };
    if let Some(build) = build {
        out.notes
            .push(format!("{name}: conda build string {build:?} dropped"));
    }
    if version.is_empty() || version == "*" {
        return Some(String::new());
    }
    let version = version.trim_end_matches('*').trim_end_matches('.');
    let components = version.split('.').count();
    // Conda's "=1.19" means any 1.19.x; a full three-part version is taken as an exact pin.
    if first.starts_with('=') && components < 3 || first.ends_with('*') {
        Some(format!("=={version}.*"))
    } else {
        Some(format!("=={version}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_plain_lists() {
        let m = conda_to_pip("numpy scipy cython pytest pandas matplotlib").unwrap();
        assert_eq!(
            m.requirements,
            vec!["numpy", "scipy", "cython", "pytest", "pandas", "matplotlib"]
        );
        let m = conda_to_pip(
            "'numpy==1.19.2' 'scipy==1.5.2' 'cython==3.0.10' pytest 'pandas<2.0.0' setuptools",
        )
        .unwrap();
        assert_eq!(
            m.requirements,
            vec![
                "numpy==1.19.2",
                "scipy==1.5.2",
                "cython==3.0.10",
                "pytest",
                "pandas<2.0.0",
                "setuptools"
            ]
        );
        assert!(m.unmapped.is_empty() && m.dropped.is_empty());
    }

    #[test]
    fn conda_iris_is_scitools_iris() {
        let m = conda_to_pip("iris cftime").unwrap();
        assert_eq!(m.requirements, vec!["scitools-iris", "cftime"]);
    }

    #[test]
    fn translates_versions_and_channels() {
        let m = conda_to_pip("conda-forge::numpy=1.19 scipy=1.5.2=py39h1 python=3.9 mkl").unwrap();
        assert_eq!(m.requirements, vec!["numpy==1.19.*", "scipy==1.5.2"]);
        assert_eq!(m.python.as_deref(), Some("3.9"));
        assert_eq!(m.dropped.len(), 2);
        let m = conda_to_pip("pytables>=3.6 'numpy 1.19.*' 'foo 1|2' graphviz").unwrap();
        assert_eq!(m.requirements, vec!["tables>=3.6", "numpy==1.19.*"]);
        assert_eq!(m.unmapped.len(), 2);
        assert!(m.blocker().unwrap().contains("graphviz"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(conda_to_pip("'unbalanced").is_err());
        assert!(conda_to_pip("name: x\ndependencies: 3\n").is_err());
        assert!(conda_to_pip("name: x\nchannels: [a]\n").is_err());
    }
}
