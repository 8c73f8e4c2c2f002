#!/usr/bin/env bash
# Installs what Tasklens needs and is missing. Idempotent; safe to run every time.
#   scripts/setup.sh run    what building and serving needs (libpq, wasm toolchain)
#   scripts/setup.sh test   the above, plus PostgreSQL and headless Chromium for the tests
# System packages come from apt-get (Debian/Ubuntu); Rust tools from cargo install.
set -euo pipefail
MODE=${1:-run}
case "$MODE" in run|test|bench) ;; *) echo "usage: $0 run|test|bench" >&2; exit 2 ;; esac

command -v cargo >/dev/null || { echo "setup: cargo not found; install a Rust toolchain first (https://rustup.rs)" >&2; exit 1; }

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
want=(libpq-dev)
# jemalloc (the server's allocator) is built from source with make.
command -v make >/dev/null || want+=(make)
if [ "$MODE" != run ]; then want+=(postgresql); fi
if [ "$MODE" = test ]; then want+=(chromium chromium-driver); fi
# The Python SDK's tests and benchmarks make a venv: any python3 (≥ 3.9) with venv
# and ensurepip will do; Debian's when there is none.
if [ "$MODE" != run ] && ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  want+=(python3 python3-venv)
fi
missing=()
for pkg in "${want[@]}"; do have_pkg "$pkg" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "setup: please install: ${missing[*]} (no apt-get here)" >&2; exit 1; }
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The console's toolchain (wasm32 std or Debian's fallback, wasm-bindgen-cli) is
# checked by web-ui/build.sh itself, right before it builds.
