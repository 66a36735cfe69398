#!/usr/bin/env bash
# Installs what ponder needs on a fresh Debian/Ubuntu machine and builds it.
#   - bubblewrap: the sandbox for test commands (from the distribution's packages)
#   - git and patch: checkouts and the harness's patch fallbacks
#   - libraries SWE-bench repositories build against offline: matplotlib's freetype and qhull
#     (its own setup would download them), pkg-config to find them, ghostscript for its PDF/EPS
#     image comparisons
#   - iproute2 and util-linux's setpriv: the stand-in internet some test suites call (requests'
#     httpbin.org) is set up inside the sandbox's own network namespace
#   - chromium (headless): the test that renders `ponder report`'s HTML page in a real browser
#   - a Rust toolchain is expected (cargo on PATH)
# Python interpreters are discovered (pyenv folders, PATH, PONDER_PYTHONS); uv is installed by
# ponder itself from PyPI into its cache on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v git >/dev/null 2>&1 || need+=(git)
command -v patch >/dev/null 2>&1 || need+=(patch)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# For the report's rendering test (crates/bench/tests/report.rs), which skips without it.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for pkg in pkg-config libfreetype-dev libqhull-dev ghostscript; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The benchmark's specs export LANG=en_US.UTF-8; generate that locale when it is missing.
if ! locale -a 2>/dev/null | grep -qi '^en_US\.utf-\?8$'; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  if ! command -v locale-gen >/dev/null 2>&1; then
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq locales >/dev/null
  fi
  $sudo sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && $sudo locale-gen >/dev/null \
    || echo "setup: could not generate en_US.UTF-8; ponder will use C.UTF-8" >&2
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
