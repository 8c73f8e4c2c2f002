#!/usr/bin/env bash
# Sets up, builds (release) and runs the Tasklens server with the web console on the
# embedded SQLite default (./data/tasklens.db). Extra arguments go to `tasklens serve`
# (for example --bind 0.0.0.0:8080). Stop it with Ctrl-C: it flushes every log first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tasklens-target}
scripts/setup.sh run
PROFILE=release web-ui/build.sh
cargo build --release --locked -p tasklens
exec "$CARGO_TARGET_DIR/release/tasklens" serve --ui-dir "$ROOT/web-ui/dist" "$@"
