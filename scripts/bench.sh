#!/usr/bin/env bash
# The benchmark: builds release binaries and the console, then starts its own servers
# (SQLite, and a private PostgreSQL with default durability) and prints a Markdown
# table of ingest, retrieval, overhead, live latency, memory, console timings, and
# plugins outside the server (a Python worker, `tasklens exec`), several nodes and
# retention on 10,000,000 records.
# Arguments go to tasklens-bench: --quick, --backends sqlite,postgres, --only PARTS,
# --no-console, --out FILE. A full run takes about 15 minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tasklens-target}
scripts/setup.sh test
PROFILE=release web-ui/build.sh
cargo build --release --locked -p tasklens -p tasklens-bench
# The Python SDK, in the same venv the tests use.
VENV="$CARGO_TARGET_DIR/python-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check ./clients/python
export TASKLENS_BENCH_PYTHON="$VENV/bin/python"
TASKLENS_UI_DIR="$ROOT/web-ui/dist" exec "$CARGO_TARGET_DIR/release/tasklens-bench" "$@"
