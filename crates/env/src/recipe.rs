//! The plain description of an environment, and guessing one from a repository.
//!
//! An [`EnvRecipe`] is data only: which Python, which requirement lines and extra packages make
//! the shared base environment, and which shell commands prepare and install one work tree on
//! top of it. Callers map their own formats onto it (the benchmark crate maps SWE-bench's specs;
//! [`EnvRecipe::detect`] reads an ordinary repository).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::EnvError;
use crate::python::{Interpreters, parse_minor};

/// What an environment is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvRecipe {
    /// Minor version such as "3.9".
    pub python: String,
    /// Requirement lines, already resolved to text (the content of a requirements file or a
    /// pinned list), installed first in one go. Blank lines and comments are ignored.
    pub requirements: Vec<String>,
    /// Further pip packages installed after the requirements (one requirement per entry).
    pub packages: Vec<String>,
    /// The pip to put into the base before anything else, e.g. `pip<25.3` when `install` uses
    /// options that newer pips removed (`--no-use-pep517` went in 25.3). `None`: the newest
    /// pip that supports the interpreter. Layers run this pip.
    pub pip: Option<String>,
    /// Resolve as the registry stood before this date (`YYYY-MM-DD`, from 00:00:00Z), e.g. to
    /// get what a conda channel offered for an old Python, or what the benchmark's images got.
    /// In the base it applies to `requirements` (not `packages`): uv's `--exclude-newer`, or
    /// for pip ponder's dated index ([`crate::dated_index`]). In a layer, every pip command of
    /// `pre_install` and `install` resolves through the dated index (`PIP_INDEX_URL`), and uv
    /// gets `UV_EXCLUDE_NEWER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_before: Option<String>,
    /// Shell commands run in the work tree before `install`, in one bash script with
    /// `set -euo pipefail`. Commands needing root on the host are skipped (see
    /// [`classify_command`]).
    pub pre_install: Vec<String>,
    /// Shell command that installs the work tree into its layer, e.g.
    /// `python -m pip install -e .`.
    pub install: Option<String>,
    /// Variables set for every build step and in the layer's activation.
    pub env: BTreeMap<String, String>,
    /// Constraints for a layer's installs (`PIP_CONSTRAINT`), which pip also applies to the
    /// build requirements it installs for an isolated build, e.g. `setuptools<80` so a
    /// project's unpinned `setuptools` build requirement gets one of its era. Not part of the
    /// base's identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_constraints: Vec<String>,
    /// Human notes about how the recipe was made (not part of its identity).
    pub notes: Vec<String>,
}

/// The parts of a recipe that define the base environment, in a stable form for hashing.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BaseKey<'a> {
    pub format: u32,
    pub python_version: String,
    pub python_path: String,
    pub tool: &'a str,
    pub requirements: Vec<String>,
    pub packages: Vec<String>,
    pub pip: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    /// Left out when unset, so recipes without it keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_before: Option<&'a str>,
    /// How a pip base resolves as of `resolve_before` (1: through the dated index); left out
    /// otherwise, so uv bases and undated ones keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dated_index: Option<u32>,
}

/// Checks a `resolve_before` date: a real calendar date written `YYYY-MM-DD`.
pub fn check_date(date: &str) -> Result<(), String> {
    match crate::dated_index::date_start(date.trim()) {
        Some(_) => Ok(()),
        None => Err(format!("{date:?} is not a date of the form YYYY-MM-DD")),
    }
}

impl EnvRecipe {
    /// A recipe with only a Python version.
    pub fn new(python: impl Into<String>) -> EnvRecipe {
        EnvRecipe {
            python: python.into(),
            ..EnvRecipe::default()
        }
    }

    /// Requirement lines without blanks, comments and surrounding space.
    pub fn requirement_lines(&self) -> Vec<String> {
        clean_lines(&self.requirements)
    }

    /// Extra packages without blanks and surrounding space.
    pub fn package_list(&self) -> Vec<String> {
        self.packages
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Checks what can be checked without building.
    pub fn validate(&self) -> Result<(), EnvError> {
        if parse_minor(&self.python).is_none() {
            return Err(EnvError::InvalidRecipe(format!(
                "python version {:?} is not of the form X.Y",
                self.python
            )));
        }
        if let Some(pip) = &self.pip
            && requirement_name(pip.trim()) != "pip"
        {
            return Err(EnvError::InvalidRecipe(format!(
                "the pip field must be a requirement on pip itself (e.g. \"pip<25.3\"), not {pip:?}"
            )));
        }
        if let Some(date) = &self.resolve_before
            && let Err(e) = check_date(date)
        {
            return Err(EnvError::InvalidRecipe(format!("resolve_before: {e}")));
        }
        for line in self.requirement_lines() {
            if line.starts_with("-e ") || line.starts_with("--editable") {
                return Err(EnvError::InvalidRecipe(format!(
                    "requirement line {line:?} installs a source tree; the shared base cannot \
                     hold one, put it in `install` instead"
                )));
            }
            if line.starts_with("-r ") || line.starts_with("--requirement") {
                return Err(EnvError::InvalidRecipe(format!(
                    "requirement line {line:?} includes another file; inline its lines first"
                )));
            }
        }
        Ok(())
    }

    /// A best-effort recipe for an ordinary repository: requirement files at the top level,
    /// an editable install when there is a `pyproject.toml`, `setup.py` or `setup.cfg` (with the
    /// `test`/`tests`/`testing` extra when it declares one), pytest when nothing provides it,
    /// and the newest interpreter that fits the declared `requires-python`.
    pub fn detect(worktree: &Path, pythons: &Interpreters) -> Result<EnvRecipe, EnvError> {
        let mut recipe = EnvRecipe::default();
        let mut requires_python: Option<String> = None;
        let mut extras: Vec<String> = Vec::new();
        let mut declared_deps: Vec<String> = Vec::new();

        let pyproject = worktree.join("pyproject.toml");
        let has_pyproject = pyproject.is_file();
        if has_pyproject {
            let text = std::fs::read_to_string(&pyproject)
                .with_context(|| format!("cannot read {}", pyproject.display()))?;
            match text.parse::<toml::Table>() {
                Ok(doc) => {
                    if let Some(project) = doc.get("project").and_then(|p| p.as_table()) {
                        requires_python = project
                            .get("requires-python")
                            .and_then(|v| v.as_str())
                            .map(str::to_string);
                        if let Some(deps) = project.get("dependencies").and_then(|d| d.as_array()) {
                            declared_deps
                                .extend(deps.iter().filter_map(|d| d.as_str()).map(str::to_string));
                        }
                        if let Some(opt) = project
                            .get("optional-dependencies")
                            .and_then(|o| o.as_table())
                        {
                            extras.extend(opt.keys().cloned());
                            for deps in opt.values().filter_map(|v| v.as_array()) {
                                declared_deps.extend(
                                    deps.iter().filter_map(|d| d.as_str()).map(str::to_string),
                                );
                            }
                        }
                    }
                }
                Err(e) => recipe.notes.push(format!(
                    "pyproject.toml does not parse ({e}); ignored its metadata"
                )),
            }
        }
        let setup_py = worktree.join("setup.py");
        let setup_cfg = worktree.join("setup.cfg");
        for file in [&setup_cfg, &setup_py] {
            if requires_python.is_none()
                && let Ok(text) = std::fs::read_to_string(file)
            {
                requires_python = find_python_requires(&text);
                for extra in ["test", "tests", "testing"] {
                    if text.contains(&format!("'{extra}'"))
                        || text.contains(&format!("\"{extra}\""))
                        || text
                            .lines()
                            .any(|l| l.trim_start().starts_with(&format!("{extra} =")))
                    {
                        extras.push(extra.to_string());
                    }
                }
            }
        }

        let mut req_files: Vec<_> = std::fs::read_dir(worktree)
            .with_context(|| format!("cannot list {}", worktree.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.ends_with(".txt")
                            && (n.starts_with("requirements") || n.ends_with("requirements.txt"))
                    })
            })
            .collect();
        req_files.sort();
        let mut installs_self = false;
        for file in &req_files {
            let lines = read_requirements(file, worktree, 0)?;
            for line in lines {
                let local = line.starts_with("-e ")
                    || line.starts_with("--editable")
                    || line == "."
                    || line.starts_with("./");
                if local {
                    installs_self = true;
                    recipe.notes.push(format!(
                        "{}: {line:?} refers to the work tree; it is installed by `install`",
                        file.file_name().unwrap_or_default().to_string_lossy()
                    ));
                } else if line.starts_with("-c ") || line.starts_with("--constraint") {
                    recipe
                        .notes
                        .push(format!("ignored constraint line {line:?}"));
                } else {
                    recipe.requirements.push(line);
                }
            }
            recipe.notes.push(format!(
                "requirements from {}",
                file.file_name().unwrap_or_default().to_string_lossy()
            ));
        }

        if has_pyproject || setup_py.is_file() || setup_cfg.is_file() || installs_self {
            let extra = ["test", "tests", "testing"]
                .into_iter()
                .find(|e| extras.iter().any(|x| x == e));
            recipe.install = Some(match extra {
                Some(e) => format!("python -m pip install -e '.[{e}]'"),
                None => "python -m pip install -e .".to_string(),
            });
        }

        let mentions_pytest = recipe
            .requirements
            .iter()
            .chain(declared_deps.iter())
            .any(|r| requirement_name(r) == "pytest");
        if !mentions_pytest {
            recipe.packages.push("pytest".to_string());
            recipe
                .notes
                .push("added pytest: nothing in the repository declares it".to_string());
        }

        let spec = requires_python.clone().unwrap_or_default();
        let chosen = pythons
            .all()
            .iter()
            .filter(|i| i.version.0 == 3 && python_spec_allows(&spec, i.version))
            .map(|i| i.minor())
            .max();
        match chosen {
            Some((a, b)) => {
                recipe.python = format!("{a}.{b}");
                recipe.notes.push(match &requires_python {
                    Some(s) => format!("python {a}.{b}: newest found that satisfies {s:?}"),
                    None => format!("python {a}.{b}: newest found (no requires-python declared)"),
                });
            }
            None => {
                return Err(EnvError::InvalidRecipe(format!(
                    "no Python 3 interpreter found that satisfies requires-python {:?}; found {}",
                    spec,
                    pythons.summary()
                )));
            }
        }
        Ok(recipe)
    }
}

pub(crate) fn clean_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.lines())
        .map(|l| {
            // pip treats " #" as the start of a comment; a '#' inside a URL fragment is not one.
            match l.find(" #") {
                Some(i) => l[..i].trim().to_string(),
                None => l.trim().to_string(),
            }
        })
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Reads a requirements file, inlining `-r other.txt` includes relative to it (so the result
/// no longer depends on where it came from).
fn read_requirements(file: &Path, root: &Path, depth: usize) -> Result<Vec<String>, EnvError> {
    if depth > 8 {
        return Err(EnvError::InvalidRecipe(format!(
            "requirement includes nest too deeply at {}",
            file.display()
        )));
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut out = Vec::new();
    for line in clean_lines(&[text]) {
        let include = line
            .strip_prefix("-r ")
            .or_else(|| line.strip_prefix("--requirement "))
            .or_else(|| line.strip_prefix("--requirement="));
        match include {
            Some(rel) => {
                let target = file.parent().unwrap_or(root).join(rel.trim());
                out.extend(read_requirements(&target, root, depth + 1)?);
            }
            None => out.push(line),
        }
    }
    Ok(out)
}

/// The normalised project name of a requirement line ("Foo_Bar[x]>=1" -> "foo-bar").
pub(crate) fn requirement_name(req: &str) -> String {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(req.len());
    req[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

/// `python_requires=">=3.7"` in setup.py, or `python_requires = >=3.7` in setup.cfg.
fn find_python_requires(text: &str) -> Option<String> {
    let idx = text.find("python_requires")?;
    let rest = &text[idx + "python_requires".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let value = match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next()?.to_string(),
        _ => rest.lines().next()?.trim().to_string(),
    };
    (!value.is_empty()).then_some(value)
}

/// Whether a requires-python specifier such as ">=3.7,<4", "~=3.8" or "!=3.0.*" admits an
/// interpreter version. Release segments only (no pre/post releases); a clause that does not
/// parse admits everything, since this only guides a best-effort choice.
pub(crate) fn python_spec_allows(spec: &str, version: (u32, u32, u32)) -> bool {
    let have = [version.0, version.1, version.2];
    spec.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .all(|clause| {
            let (op, ver) = ["~=", "===", "==", "!=", ">=", "<=", ">", "<"]
                .iter()
                .find_map(|op| clause.strip_prefix(op).map(|v| (*op, v.trim())))
                .unwrap_or(("==", clause));
            let (ver, wildcard) = match ver.strip_suffix(".*") {
                Some(v) => (v, true),
                None => (ver, false),
            };
            let Some(want) = ver
                .split('.')
                .map(|p| p.trim().parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
            else {
                return true;
            };
            if want.is_empty() {
                return true;
            }
            let padded =
                |v: &[u32]| -> [u32; 3] { [0, 1, 2].map(|i| v.get(i).copied().unwrap_or(0)) };
            let prefix_eq = |n: usize| have.iter().zip(want.iter()).take(n).all(|(a, b)| a == b);
            let ord = have.cmp(&padded(&want));
            use std::cmp::Ordering::*;
            match op {
                "==" | "===" if wildcard => prefix_eq(want.len()),
                "==" | "===" => ord == Equal,
                "!=" if wildcard => !prefix_eq(want.len()),
                "!=" => ord != Equal,
                ">=" => ord != Less,
                "<=" => ord != Greater,
                ">" => ord == Greater,
                "<" => ord == Less,
                "~=" if want.len() >= 2 => ord != Less && prefix_eq(want.len() - 1),
                _ => true,
            }
        })
}

/// Why a recipe command is not run on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipReason(pub String);

/// Commands that need root or reach beyond the package registries: system package managers,
/// locale and service configuration, writes to system folders, downloads of system libraries.
/// Returns why the command is skipped, or `None` when it may run.
pub fn classify_command(command: &str) -> Option<SkipReason> {
    const ROOT_TOOLS: &[&str] = &[
        "apt-get",
        "apt",
        "aptitude",
        "dpkg",
        "dpkg-reconfigure",
        "yum",
        "dnf",
        "apk",
        "zypper",
        "pacman",
        "add-apt-repository",
        "locale-gen",
        "update-locale",
        "localedef",
        "useradd",
        "adduser",
        "groupadd",
        "systemctl",
        "service",
        "ldconfig",
        "sudo",
        "su",
        "chown",
        "conda",
        "mamba",
        "micromamba",
    ];
    const DOWNLOADERS: &[&str] = &["wget", "curl", "aria2c"];
    const SYSTEM_DIRS: &[&str] = &["/etc/", "/usr/", "/opt/", "/var/", "/lib/", "/root/"];

    for part in simple_commands(command) {
        let words: Vec<String> = shlex::split(&part)
            .unwrap_or_else(|| part.split_whitespace().map(str::to_string).collect());
        // Skip leading VAR=value assignments and `env`.
        let program = words
            .iter()
            .find(|w| !is_assignment(w) && w.as_str() != "env")
            .map(|w| w.rsplit('/').next().unwrap_or(w).to_string());
        if let Some(program) = program {
            if ROOT_TOOLS.contains(&program.as_str()) {
                return Some(SkipReason(format!(
                    "`{program}` changes the host system and needs root; not run by ponder \
                     (install what it provides on the host if the tests need it)"
                )));
            }
            if DOWNLOADERS.contains(&program.as_str()) {
                return Some(SkipReason(format!(
                    "`{program}` downloads from outside the package registries, which this \
                     machine cannot reach; not run"
                )));
            }
        }
        // A redirection into a system folder ("> /etc/locale.gen").
        let redirected = part
            .split(['>'])
            .skip(1)
            .map(|rest| rest.trim_start_matches('>').trim_start())
            .any(|target| {
                let target = target.trim_start_matches(['"', '\'']);
                SYSTEM_DIRS.iter().any(|d| target.starts_with(d))
            });
        if redirected {
            return Some(SkipReason(
                "writes into a system folder, which needs root on the host; not run".to_string(),
            ));
        }
    }
    None
}

/// `NAME=value` as a shell variable assignment.
fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// Splits a shell line into its simple commands at `&&`, `||`, `;` and `|`, outside quotes.
pub(crate) fn simple_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, ';' | '|' | '&') => {
                if c == '&' && chars.peek() != Some(&'&') {
                    cur.push(c);
                    continue;
                }
                if matches!(chars.peek(), Some('&') | Some('|')) {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_root_commands() {
        assert!(classify_command("apt-get update && apt-get install -y locales").is_some());
        assert!(classify_command("echo 'en_US UTF-8' > /etc/locale.gen").is_some());
        assert!(classify_command("locale-gen en_US.UTF-8").is_some());
        assert!(classify_command("wget -O \"$QHULL_TAR\" \"$QHULL_URL\"").is_some());
        assert!(
            classify_command("DEBIAN_FRONTEND=noninteractive apt-get install -y graphviz")
                .is_some()
        );
        assert!(classify_command("sed -i 's/pytest/pytest -rA/' tox.ini").is_none());
        assert!(classify_command("QHULL_URL=\"http://www.qhull.org/x.tgz\"").is_none());
        assert!(
            classify_command(
                "grep -q 'a>=2' setup.py && sed -i 's/a>=2/a>=2,<=3/' setup.py || sed -i 's/a/b/' setup.py"
            )
            .is_none()
        );
        assert!(classify_command("mkdir -p build && tar -xzf x.tgz -C build").is_none());
    }

    #[test]
    fn splits_simple_commands() {
        assert_eq!(
            simple_commands("a && b || c; d | e"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert_eq!(simple_commands("echo 'a && b'"), vec!["echo 'a && b'"]);
        assert_eq!(simple_commands("x 2>&1"), vec!["x 2>&1"]);
    }

    #[test]
    fn python_specifiers() {
        assert!(python_spec_allows(">=3.7", (3, 9, 18)));
        assert!(!python_spec_allows(">=3.7", (3, 6, 15)));
        assert!(python_spec_allows(">=3.7,<3.10", (3, 9, 18)));
        assert!(!python_spec_allows(">=3.7,<3.10", (3, 10, 13)));
        assert!(python_spec_allows("~=3.8", (3, 12, 1)));
        assert!(!python_spec_allows("~=3.8", (3, 7, 16)));
        assert!(!python_spec_allows("~=3.8.1", (3, 9, 18)));
        assert!(!python_spec_allows("!=3.8.*", (3, 8, 18)));
        assert!(python_spec_allows("", (3, 13, 0)));
        assert!(python_spec_allows(">=2.7, !=3.0.*, !=3.1.*", (3, 9, 18)));
        assert!(python_spec_allows(">3.8", (3, 8, 18)));
        assert!(python_spec_allows("junk", (3, 8, 18)));
    }

    #[test]
    fn finds_python_requires() {
        assert_eq!(
            find_python_requires("setup(name='x', python_requires='>=3.6',)"),
            Some(">=3.6".to_string())
        );
        assert_eq!(
            find_python_requires("[options]\npython_requires = >=3.8\n"),
            Some(">=3.8".to_string())
        );
    }

    #[test]
    fn requirement_names() {
        assert_eq!(requirement_name("Foo_Bar[x]>=1"), "foo-bar");
        assert_eq!(requirement_name("pytest"), "pytest");
        assert_eq!(requirement_name("zope.interface==5"), "zope-interface");
    }
}
