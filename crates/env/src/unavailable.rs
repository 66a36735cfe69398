//! Reading an installer's failure for requirements that cannot be had at all.
//!
//! Requirement lists mapped from conda (`conda_to_pip`) name packages that only exist on conda
//! channels (`cdms2`), and old pins may have no release for the chosen interpreter. The harness's
//! conda environment has them; a pip environment cannot. A base build may therefore drop such
//! a line and try again, but only when the installer's own words blame that line alone: "not
//! found in the package registry", "no version of X==V", "only X<1 is available", "X depends on
//! Python>=3.9". Conflicts between two requirements, missing dependencies of a requirement,
//! build failures and network trouble never count.
//!
//! Messages as printed (measured with uv 0.13 and pip 18 to 25 on this machine):
//!
//! ```text
//! uv:  error: No solution found when resolving dependencies
//!        cause: Because cdms2 was not found in the package registry and you require cdms2, ...
//!        cause: Because there is no version of six==99.0 and you require six==99.0, ...
//!        cause: Because the current Python version (3.6.15) does not satisfy Python>=3.9,<3.13
//!               and numpy==1.26.0 depends on Python>=3.9,<3.13, ... And because you require
//!               numpy==1.26.0, we can conclude that your requirements are unsatisfiable.
//! pip: ERROR: Could not find a version that satisfies the requirement six==99.0 (from versions: ...)
//!      ERROR: No matching distribution found for six==99.0
//!      (pip 20 adds "(from -r FILE (line N))"; a dependency of another package says "(from foo)")
//! ```

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::recipe::requirement_name;
use crate::tools::Tool;

/// A requirement the installer says cannot be installed, whatever else is installed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable {
    /// Normalised project name (`foo-bar`).
    pub name: String,
    /// The installer's words about it.
    pub why: String,
}

/// The requirements `output` (of a failed install by `tool`) blames alone, normalised.
pub(crate) fn unavailable_requirements(tool: Tool, output: &str) -> Vec<Unavailable> {
    match tool {
        Tool::Uv => from_uv(output).into_iter().collect(),
        Tool::Pip => from_pip(output),
    }
}

/// Words that mean the registry could not be asked properly; nothing is dropped then.
const UNREACHABLE: &[&str] = &[
    "not found in the cache",
    "network was disabled",
    "could not be queried",
    "credentials",
    "Retrying (Retry(",
    "Could not fetch URL",
    "NewConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "ProxyError",
    "SSLError",
    "Temporary failure in name resolution",
    "Failed to fetch",
];

fn unreachable(output: &str) -> bool {
    UNREACHABLE.iter().any(|w| output.contains(w))
}

const NAME: &str = r"[A-Za-z0-9][A-Za-z0-9._-]*";

static UV_REQUIRE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"you require ({NAME})")).expect("valid regex"));
/// A name followed by extras and/or a version clause (`six==99.0`, `foo[x]>=1`, `Python>=3.9`).
static UV_VERSIONED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:^|[\s(,:])({NAME})(?:\[[^\]]*\])?(?:===|==|!=|>=|<=|~=|<|>)"
    ))
    .expect("valid regex")
});
/// Names in the phrases uv builds its explanations from. Where the name comes first it is the
/// start of a token (`numpy>=1.26.0,<1.26.2 cannot be used`), so versions never count as names.
static UV_PHRASES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let token = format!(r"(?:^|[\s(,:])({NAME})(?:\[[^\]]*\])?(?:[<>=!~]\S*)?");
    [
        format!(r"{token} was not found in the"),
        format!(r"{token} depends? on"),
        format!(r"{token} was yanked"),
        format!(r"{token} cannot be used"),
        format!(r"{token} has no"),
        format!(r"{token} is available"),
        format!(r"no versions? of ({NAME})"),
        format!(r"versions of ({NAME})"),
        format!(r"only ({NAME})"),
        format!(r"depends? on ({NAME})"),
    ]
    .iter()
    .map(|p| Regex::new(p).expect("valid regex"))
    .collect()
});

/// uv explains one unsatisfiable set per failure. It is blamed on a single requirement when
/// every package the explanation mentions is that requirement (or Python itself).
fn from_uv(output: &str) -> Option<Unavailable> {
    const HEADER: &str = "No solution found when resolving dependencies";
    let start = output.find(HEADER)?;
    // The explanation runs until uv's hints, which may name other packages for other reasons.
    let text: String = output[start + HEADER.len()..]
        .lines()
        .take_while(|l| !l.trim_start().starts_with("hint:"))
        .collect::<Vec<_>>()
        .join("\n");
    if unreachable(output) {
        return None;
    }
    let required: BTreeSet<String> = UV_REQUIRE
        .captures_iter(&text)
        .map(|c| requirement_name(&c[1]))
        .collect();
    let [name] = required.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let mut mentioned: BTreeSet<String> = UV_VERSIONED
        .captures_iter(&text)
        .map(|c| requirement_name(&c[1]))
        .collect();
    for re in UV_PHRASES.iter() {
        mentioned.extend(re.captures_iter(&text).map(|c| requirement_name(&c[1])));
    }
    // "the current Python version" and "Python>=3.9" are the interpreter, not a package.
    mentioned.remove("python");
    mentioned.remove("the");
    if mentioned.iter().any(|m| m != name) {
        return None;
    }
    let why = text
        .lines()
        .map(|l| l.trim().trim_start_matches("cause:").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(Unavailable {
        name: name.clone(),
        why: shorten(&why),
    })
}

static PIP_NO_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^ERROR: (?:Could not find a version that satisfies the requirement|No matching distribution found for) (.+)$",
    )
    .expect("valid regex")
});

/// pip names the requirement it could not find; a `(from X)` other than a requirements file
/// means it was a dependency of X, which is not the line's fault.
fn from_pip(output: &str) -> Vec<Unavailable> {
    if unreachable(output) {
        return Vec::new();
    }
    let mut out: Vec<Unavailable> = Vec::new();
    // Some pips say "(from foo)" on the first line only; one such line settles it for the name.
    let mut dependencies: BTreeSet<String> = BTreeSet::new();
    for caps in PIP_NO_VERSION.captures_iter(output) {
        let rest = caps[1].trim();
        let (req, tail) = match rest.find(" (") {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let name = requirement_name(req.trim());
        let transitive = tail
            .split("(from ")
            .skip(1)
            .any(|from| !from.starts_with("versions:") && !from.starts_with("-r "));
        if transitive {
            dependencies.insert(name);
            continue;
        }
        if name.is_empty() || out.iter().any(|u| u.name == name) {
            continue;
        }
        out.push(Unavailable {
            name,
            why: shorten(caps[0].trim_start_matches("ERROR: ")),
        });
    }
    out.retain(|u| !dependencies.contains(&u.name));
    out
}

/// At most 300 characters, cut at a character boundary.
fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ...", &text[..cut])
}

#[cfg(test)]
mod tests {
    //! The fixtures are real outputs of uv 0.13.9 and of pip 20.3 (Python 2.7), 21.3 (3.6) and
    //! 26.3 (3.11), captured on this machine; only the scratch folder names were shortened.

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/data/installer-output/", $name, ".txt"))
        };
    }

    fn uv(text: &str) -> Option<String> {
        from_uv(text).map(|u| u.name)
    }

    fn pip(text: &str) -> Vec<String> {
        from_pip(text).into_iter().map(|u| u.name).collect()
    }

    #[test]
    fn uv_blames_a_single_missing_or_impossible_requirement() {
        let missing = from_uv(fixture!("uv-not-found")).expect("blamed");
        assert_eq!(missing.name, "cdms2");
        assert!(
            missing
                .why
                .starts_with("Because cdms2 was not found in the package registry"),
            "{}",
            missing.why
        );
        assert_eq!(uv(fixture!("uv-no-version")).as_deref(), Some("six"));
        assert_eq!(uv(fixture!("uv-python-pin")).as_deref(), Some("numpy"));
        // Eighty lines of derivation, all about numpy and Python.
        assert_eq!(uv(fixture!("uv-python-range")).as_deref(), Some("numpy"));
        assert!(from_uv(fixture!("uv-python-range")).unwrap().why.len() < 320);

        let extras = "error: No solution found when resolving dependencies\n  cause: Because only \
                      ponder-no-such-package[extra]<1.0 is available and you require \
                      ponder-no-such-package[extra]>=1.0, we can conclude that your requirements \
                      are unsatisfiable.\n";
        assert_eq!(uv(extras).as_deref(), Some("ponder-no-such-package"));
        // A hint about another package does not make the failure ambiguous.
        let hinted = format!(
            "{}\n  hint: foo==1 was requested with a pre-release marker\n",
            fixture!("uv-no-version")
        );
        assert_eq!(uv(&hinted).as_deref(), Some("six"));
    }

    #[test]
    fn uv_never_blames_conflicts_dependencies_or_the_network() {
        assert_eq!(uv(fixture!("uv-conflict")), None);
        assert_eq!(uv(fixture!("uv-dependency-missing")), None);
        assert_eq!(uv(fixture!("uv-offline")), None);
        let build = "error: Failed to build `numpy==1.16.0`\n  Caused by: The build backend \
                     returned an error\n";
        assert_eq!(uv(build), None);
    }

    #[test]
    fn pip_blames_direct_requirements_only() {
        assert_eq!(
            pip(fixture!("pip26-not-found")),
            ["ponder-no-such-package-xyz"]
        );
        let why = &from_pip(fixture!("pip26-not-found"))[0].why;
        assert!(why.starts_with("Could not find a version"), "{why}");
        assert_eq!(pip(fixture!("pip21-no-version")), ["six"]);
        assert_eq!(pip(fixture!("pip20-py27-python")), ["numpy"]);
        let odd_name = "ERROR: Could not find a version that satisfies the requirement \
                        Ponder_No_Such.Package>=1.0 (from versions: none)\n";
        assert_eq!(pip(odd_name), ["ponder-no-such-package"]);

        // pip 21 says "(from ponderdeptest)" on the first line only.
        assert!(pip(fixture!("pip21-dependency-missing")).is_empty());
        assert!(pip(fixture!("pip26-dependency-missing")).is_empty());
        let offline = "WARNING: Retrying (Retry(total=4, connect=None, read=None)) after \
                       connection broken\nERROR: Could not find a version that satisfies the \
                       requirement six==1.16.0 (from versions: none)\n";
        assert!(pip(offline).is_empty());
        let conflict = "ERROR: Cannot install a==1 and b==2 because these package versions have \
                        conflicting dependencies.\nERROR: ResolutionImpossible\n";
        assert!(pip(conflict).is_empty());
    }
}
