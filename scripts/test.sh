#!/usr/bin/env bash
# Sets up and runs every check and test: formatting, clippy, the wasm console build,
# then the whole test suite against SQLite, a real PostgreSQL server started here
# (initdb + pg_ctl on a free loopback port, stopped at the end) and a real headless
# Chromium for the console, then the Python SDK's tests in a venv of their own
# against the real server.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tasklens-target}
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "setup"
scripts/setup.sh test

step "format"
cargo fmt --all -- --check
if [ -f web-ui/Cargo.toml ]; then cargo fmt --manifest-path web-ui/Cargo.toml -- --check; fi

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -f web-ui/Cargo.toml ]; then
  step "console (wasm build and lint)"
  PROFILE=release LINT=1 web-ui/build.sh
  export TASKLENS_TEST_UI_DIR="$ROOT/web-ui/dist" TASKLENS_TEST_REQUIRE_BROWSER=1
  step "console unit tests (native)"
  cargo test --manifest-path web-ui/Cargo.toml --locked
fi

step "PostgreSQL"
cargo build --locked -p tasklens-testkit
PG_DIR=$(mktemp -d /tmp/tasklens-pg.XXXXXX)
cleanup() { "$CARGO_TARGET_DIR/debug/tasklens-testkit" pg-down "$PG_DIR" || true; rm -rf "$PG_DIR"; }
trap cleanup EXIT
TASKLENS_TEST_PG_URL=$("$CARGO_TARGET_DIR/debug/tasklens-testkit" pg-up "$PG_DIR")
export TASKLENS_TEST_PG_URL TASKLENS_TEST_REQUIRE_PG=1
echo "PostgreSQL for the tests: $TASKLENS_TEST_PG_URL"

step "tests"
failed=0
cargo test --workspace --locked --no-fail-fast || failed=1

step "Python SDK (its own venv, against the real server)"
# The venv lives beside the build, outside the clone, and is reused between runs.
VENV="$CARGO_TARGET_DIR/python-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "./clients/python[test]"
# `cargo test` built the server binary for the CLI tests, and the PostgreSQL step
# the testkit's; building them again with other features would only cost time.
TASKLENS_BIN="$CARGO_TARGET_DIR/debug/tasklens" \
TASKLENS_TESTKIT="$CARGO_TARGET_DIR/debug/tasklens-testkit" \
TASKLENS_TEST_REQUIRE_SERVER=1 \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests || failed=1

[ "$failed" -eq 0 ] || { echo "some tests failed (see above)" >&2; exit 1; }
step "done"
