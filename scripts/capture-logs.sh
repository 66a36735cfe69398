#!/usr/bin/env bash
# Provenance of the SWE-bench log-parser fixtures in crates/swebench/tests/fixtures/logs/.
#
# Each capture runs a real project's real test runner, on code from a PyPI distribution, inside
# a small eval-style bash script shaped like the harness's eval.sh (`set -uxo pipefail`, the test
# command between the `: '>>>>> Start Test Output'` and `: '>>>>> End Test Output'` no-ops), with
# stdout and stderr merged into one file as the harness's test_output.txt is. A few captures first
# apply a small deliberate bug to the unpacked source so that the log also has failing and erroring
# tests; each such edit is spelled out below and checked to have applied.
#
# pytest runs get `-p no:cacheprovider` so that no .pytest_cache lands in the unpacked trees.
#
# This script documents how the fixtures were made; CI does not run it (it needs the network to
# reach PyPI and takes several minutes). Usage:
#   scripts/capture-logs.sh [FORMAT...]     # default: all twelve formats
# Environment: WORK (scratch folder, default /tmp/ponder-capture-logs), OUT (fixture folder).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/ponder-capture-logs}
OUT=${OUT:-$ROOT/crates/swebench/tests/fixtures/logs}
export UV_PYTHON_DOWNLOADS=never
# Copies, not links into uv's cache: some captures edit installed files.
export UV_LINK_MODE=copy
mkdir -p "$WORK/sdist" "$WORK/src"

# pyenv keeps one interpreter per minor version; find it instead of hard-coding a patch level.
python_for() {
    local minor=$1 p
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/python; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    echo "no Python $minor under \$PYENV_ROOT/versions; install it with pyenv" >&2
    exit 1
}

uv_bin() {
    if [ ! -x "$WORK/uv/bin/uv" ]; then
        "$(python_for 3.11)" -m venv "$WORK/uv"
        "$WORK/uv/bin/pip" install -q uv
    fi
    echo "$WORK/uv/bin/uv"
}

# venv NAME PYTHON_MINOR PACKAGE... : a fresh venv with the given requirements.
venv() {
    local name=$1 minor=$2 uv
    shift 2
    uv=$(uv_bin)
    rm -rf "$WORK/venv-$name"
    if [ -n "${STANDALONE:-}" ]; then
        # tox-current-env links .tox/<env>/bin/python to the running interpreter, and a venv's
        # python reached through that link no longer finds its venv. The harness uses a conda
        # env, a whole Python installation; a copy of the pyenv installation is the same shape.
        cp -a "$(dirname "$(dirname "$(python_for "$minor")")")" "$WORK/venv-$name"
    else
        "$uv" venv -q --python "$(python_for "$minor")" "$WORK/venv-$name"
    fi
    "$uv" pip install -q --python "$WORK/venv-$name/bin/python" "$@"
}

# unpack DIST==VERSION : a fresh copy of a PyPI source distribution under $WORK/src.
unpack() {
    local spec=$1 name=${1%%==*} version=${1##*==} archive
    archive=$(ls "$WORK/sdist/" 2>/dev/null | grep -i "^${name}-${version}\.tar\.gz$" || true)
    if [ -z "$archive" ]; then
        pip download -q --no-deps --no-binary :all: "$spec" -d "$WORK/sdist"
        archive=$(ls "$WORK/sdist/" | grep -i "^${name}-${version}\.tar\.gz$")
    fi
    rm -rf "$WORK/src/${archive%.tar.gz}"
    tar xzf "$WORK/sdist/$archive" -C "$WORK/src"
    echo "$WORK/src/${archive%.tar.gz}"
}

# edit FILE OLD NEW : a deliberate bug; fails loudly when OLD is not in FILE.
edit() {
    python3 - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if old not in text:
    sys.exit(f"deliberate edit did not apply: {old!r} not in {path}")
open(path, "w").write(text.replace(old, new, 1))
EOF
}

# eval_log FORMAT NAME DIR COMMAND : run COMMAND in DIR the way the harness's eval.sh does and
# keep the merged output as the fixture FORMAT/NAME.log.
eval_log() {
    local format=$1 name=$2 dir=$3 cmd=$4
    mkdir -p "$OUT/$format"
    (cd "$dir" && bash -c "set -uxo pipefail
: '>>>>> Start Test Output'
$cmd
: '>>>>> End Test Output'") >"$OUT/$format/$name.log" 2>&1 || true
    echo "$format/$name.log: $(wc -c <"$OUT/$format/$name.log") bytes"
}

capture_django() {
    local src
    src=$(unpack Django==3.2.25)
    venv django 3.9 'asgiref>=3.3.2,<4' pytz sqlparse
    # Make sentences start lower-case (FAIL) and words() reject negative counts (ERROR).
    edit "$src/django/utils/lorem_ipsum.py" "(s[0].upper(), s[1:]" "(s[0], s[1:]"
    edit "$src/django/utils/lorem_ipsum.py" "    word_list = list(COMMON_WORDS) if common else []" \
        "    if count < 0:
        raise ValueError('negative count')
    word_list = list(COMMON_WORDS) if common else []"
    eval_log django runtests "$src/tests" "PYTHONPATH=.. $WORK/venv-django/bin/python ./runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 utils_tests.test_lorem_ipsum utils_tests.test_timesince db_functions.comparison.test_nullif backends.mysql.test_operations"
}

capture_sympy() {
    local src
    src=$(unpack sympy==1.9)
    venv sympy 3.9 mpmath==1.3.0
    # on_diag inverted (F) and slice_of_slice raising (E).
    edit "$src/sympy/matrices/expressions/slice.py" "return self.rowslice == self.colslice" \
        "return self.rowslice != self.colslice"
    edit "$src/sympy/matrices/expressions/slice.py" "    start1, stop1, step1 = s
" "    start1, stop1, step1 = s
    if step1 == 1:
        raise ZeroDivisionError('injected')
"
    # The sdist has no bin/test; bin/test -C --verbose is sympy.test(verbose=True) with
    # SYMPY_USE_CACHE=no, which is what this calls.
    eval_log sympy bin_test "$src" "SYMPY_USE_CACHE=no PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' $WORK/venv-sympy/bin/python -c 'import sys, sympy; sys.exit(not sympy.test(*sys.argv[1:], verbose=True))' sympy/matrices/expressions/tests/test_slice.py sympy/printing/tests/test_tensorflow.py sympy/solvers/tests/test_decompogen.py"
}

capture_flask() {
    local src
    src=$(unpack Flask==2.0.3)
    # from_mapping drops TEST_KEY (FAILED); a test asks for a missing fixture (ERROR at setup).
    edit "$src/src/flask/config.py" "            if key.isupper():
                self[key] = value" "            if key.isupper() and key != 'TEST_KEY':
                self[key] = value"
    edit "$src/tests/test_instance_config.py" "def test_explicit_instance_paths(modules_tmpdir):" \
        "def test_explicit_instance_paths(modules_tmpdir, missing_fixture):"
    venv flask 3.9 Werkzeug==2.0.3 Jinja2==3.0.3 itsdangerous==2.0.1 click==8.0.4 \
        MarkupSafe==2.0.1 pytest==7.4.4 -e "$src"
    eval_log flask pytest_rA "$src" "$WORK/venv-flask/bin/python -m pytest -rA -p no:cacheprovider tests/test_config.py tests/test_instance_config.py"
}

capture_requests() {
    local src
    src=$(unpack requests==2.31.0)
    # super_len of strings off by one (FAILED); a fixture that does not exist (ERROR).
    edit "$src/requests/utils.py" "        total_length = len(o)" "        total_length = len(o) + 1"
    edit "$src/tests/test_structures.py" "    def test_list(self):" "    def test_list(self, missing_fixture):"
    venv requests 3.9 pytest==7.4.4 pytest-mock==3.11.1 'urllib3<2' idna charset_normalizer \
        certifi -e "$src"
    eval_log requests pytest_rA "$src" "$WORK/venv-requests/bin/python -m pytest -rA -p no:cacheprovider tests/test_utils.py tests/test_structures.py"
}

capture_pylint() {
    local src
    src=$(unpack pylint==2.8.2)
    # fixme messages carry upper-cased text (FAILED); one test asks for a missing fixture (ERROR).
    edit "$src/pylint/checkers/misc.py" "                    args=comment_text," \
        "                    args=comment_text.upper(),"
    edit "$src/tests/test_import_graph.py" "def test_missing_graphviz(filename):" \
        "def test_missing_graphviz(filename, missing_fixture):"
    venv pylint 3.9 'astroid==2.5.6' 'isort<6' 'mccabe<0.7' toml 'setuptools<70' pytest==7.4.4 -e "$src"
    eval_log pylint pytest_rA "$src" "$WORK/venv-pylint/bin/python -m pytest -rA -p no:cacheprovider tests/checkers/unittest_misc.py tests/test_import_graph.py tests/checkers/unittest_spelling.py"
}

capture_pytest() {
    local src
    src=$(unpack pytest==7.0.1)
    # approx's dict repr misspelled (FAILED); one test asks for a missing fixture (ERROR).
    edit "$src/src/_pytest/python_api.py" '        return "approx({!r})".format(
            {k: self._approx_scalar(v) for k, v in self.expected.items()}' \
        '        return "approxx({!r})".format(
            {k: self._approx_scalar(v) for k, v in self.expected.items()}'
    edit "$src/testing/python/approx.py" "    def test_repr_complex_numbers(self):" \
        "    def test_repr_complex_numbers(self, missing_fixture):"
    venv pytest 3.9 hypothesis xmlschema argcomplete -e "$src"
    eval_log pytest pytest_rA "$src" "$WORK/venv-pytest/bin/python -m pytest -rA -p no:cacheprovider testing/python/approx.py testing/test_argcomplete.py"
}

capture_seaborn() {
    local src
    src=$(unpack seaborn==0.12.2)
    # An integer seed is ignored, so seeded bootstraps stop being reproducible (FAILED).
    edit "$src/seaborn/algorithms.py" "            rng = np.random.default_rng(seed)" \
        "            rng = np.random.default_rng(None if isinstance(seed, int) else seed)"
    venv seaborn 3.9 'numpy<2' 'pandas<2' 'matplotlib<3.8' scipy pytest -e "$src"
    eval_log seaborn pytest_rA "$src" "$WORK/venv-seaborn/bin/python -m pytest --no-header -rA -p no:cacheprovider tests/test_algorithms.py tests/test_rcmod.py"
}

capture_xarray() {
    local src
    src=$(unpack xarray==2023.1.0)
    # Positive-integer options must now exceed 1 (FAILED).
    edit "$src/xarray/core/options.py" "return isinstance(value, int) and value > 0" \
        "return isinstance(value, int) and value > 1"
    edit "$src/xarray/tests/test_options.py" "def test_display_width() -> None:" \
        "def test_display_width(missing_fixture) -> None:"
    venv xarray 3.10 'numpy<1.25' 'pandas<2' packaging pytest==7.4.0 -e "$src"
    eval_log xarray pytest_rA "$src" "$WORK/venv-xarray/bin/python -m pytest -rA -p no:cacheprovider xarray/tests/test_options.py xarray/tests/test_dtypes.py"
}

capture_sphinx() {
    local src
    src=$(unpack sphinx==7.1.2)
    # The harness's pre_install step for sphinx, then escape() that no longer escapes a leading
    # dot (FAILED) and a test asking for a missing fixture (ERROR).
    sed -i 's/pytest/pytest -rA/' "$src/tox.ini"
    edit "$src/sphinx/util/rst.py" "    text = re.sub(r'^\\.', r'\\.', text)  # escape a dot at top" \
        "    text = re.sub(r'^\\.', r'.', text)  # escape a dot at top"
    edit "$src/tests/test_util_rst.py" "def test_heading():" "def test_heading(missing_fixture):"
    STANDALONE=1 venv sphinx 3.9 tox==4.16.0 tox-current-env==0.0.11 Jinja2==3.0.3 -e "$src[test]"
    eval_log sphinx tox "$src" "$WORK/venv-sphinx/bin/tox --current-env -epy39 -v -- tests/test_util_i18n.py tests/test_util_rst.py tests/test_ext_math.py -k 'not math or imgmath'"
}

# matplotlib, astropy and scikit-learn compile C/C++ (and matplotlib's build downloads
# FreeType), so these three run the test modules that their PyPI wheels ship, from
# site-packages, under the pytest version their SWE-bench specs pin.
site_packages() { "$WORK/venv-$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

capture_matplotlib() {
    local sp
    # Python 3.10, where str(MouseButton.LEFT) is "MouseButton.LEFT" and so are the
    # parametrized ids the harness's matplotlib parser rewrites (3.11 prints "1").
    venv matplotlib 3.10 matplotlib==3.7.5 'pyparsing<3.1' pytest==7.4.4
    sp=$(site_packages matplotlib)
    # Default file names lose their extension dot (FAILED).
    edit "$sp/matplotlib/backend_bases.py" "        filename = basename + '.' + filetype" \
        "        filename = basename + filetype"
    # The wheel leaves out the baseline images and matplotlib.tests refuses to import without
    # the folder; an empty one lets the non-image tests run (image comparisons then fail).
    mkdir -p "$sp/matplotlib/tests/baseline_images"
    eval_log matplotlib pytest_rA "$(site_packages matplotlib)" "$WORK/venv-matplotlib/bin/python -m pytest -rA -p no:cacheprovider matplotlib/tests/test_backend_bases.py"
}

capture_astropy() {
    local sp
    venv astropy 3.9 astropy==5.2.2 'numpy<1.26' pytest==7.4.0 hypothesis
    sp=$(site_packages astropy)
    # QDP numbers lose their exponent (FAILED); a test asks for a missing fixture (ERROR).
    edit "$sp/astropy/io/ascii/qdp.py" '_decimal_re = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"' \
        '_decimal_re = r"[+-]?(\d+(\.\d*)?|\.\d+)"'
    edit "$sp/astropy/io/ascii/tests/test_qdp.py" "def test_roundtrip_example(tmp_path):" \
        "def test_roundtrip_example(tmp_path, missing_fixture):"
    eval_log astropy pytest_rA_classic "$(site_packages astropy)" "$WORK/venv-astropy/bin/python -m pytest -rA -vv -o console_output_style=classic --tb=no -p no:cacheprovider astropy/io/ascii/tests/test_qdp.py astropy/units/tests/test_format.py -k 'qdp or ogip'"
}

capture_scikit() {
    local sp
    venv scikit 3.9 scikit-learn==1.3.2 'numpy<2' pytest==7.4.4
    sp=$(site_packages scikit)
    # check_increasing answers the opposite (FAILED).
    edit "$sp/sklearn/isotonic.py" "    increasing_bool = rho >= 0" "    increasing_bool = rho < 0"
    eval_log scikit pytest_rA "$(site_packages scikit)" "$WORK/venv-scikit/bin/python -m pytest -rA -p no:cacheprovider sklearn/tests/test_isotonic.py sklearn/feature_extraction/tests/test_text.py -k 'isotonic or callable_analyzer'"
}

case_all="django sympy flask requests pylint pytest seaborn xarray sphinx matplotlib astropy scikit"
for f in ${@:-$case_all}; do
    "capture_$f"
done
