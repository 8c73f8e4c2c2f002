#!/bin/sh
# Builds the console into web-ui/dist: cargo (wasm32) + wasm-bindgen (+ wasm-opt when
# npm is there). Installs what is missing first: the wasm32 std through rustup, or
# Debian's rustc-web fallback (wasm-env.sh), and the wasm-bindgen-cli matching
# Cargo.lock. PROFILE=release|debug (default release); LINT=1 also runs clippy.
set -eu
PROFILE=${PROFILE:-release}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"
export CARGO_TARGET_DIR="${TASKLENS_WASM_TARGET_DIR:-$HOME/.cache/tasklens-target-wasm}"

# Tools first, before wasm-env.sh may point RUSTC at Debian's compiler.
WB_VER=$(awk '$0=="name = \"wasm-bindgen\"" {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$WB_VER" ]; then
  echo "web-ui: installing wasm-bindgen-cli $WB_VER (a few minutes, once)" >&2
  # Not --locked: its lock file pins a crate version the index no longer has.
  CARGO_TARGET_DIR="$HOME/.cache/tasklens-wasm-bindgen-build" cargo install wasm-bindgen-cli --version "$WB_VER"
fi
WASM_OPT="$HERE/tools/node_modules/.bin/wasm-opt"
if [ ! -x "$WASM_OPT" ] && command -v npm >/dev/null 2>&1; then
  npm install --prefix "$HERE/tools" --no-audit --no-fund binaryen@132.0.0 >/dev/null 2>&1 || true
fi

. "$HERE/wasm-env.sh"
if [ "${LINT:-}" = 1 ]; then
  cargo clippy --locked --target wasm32-unknown-unknown -- -D warnings
fi
if [ "$PROFILE" = release ]; then
  cargo build --locked --release --target wasm32-unknown-unknown
else
  cargo build --locked --target wasm32-unknown-unknown
fi
rm -rf dist
mkdir dist
wasm-bindgen --target web --no-typescript --out-dir dist --out-name app \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$PROFILE/tasklens-web-ui.wasm"
if [ "$PROFILE" = release ] && [ -x "$WASM_OPT" ]; then
  "$WASM_OPT" -Oz --enable-reference-types --enable-bulk-memory -o dist/app_bg.wasm dist/app_bg.wasm
fi
# Content-hashed names, so that a browser never pairs a cached app.js with a new
# wasm after an upgrade: the server caches these for a year and index.html not at all.
# The boot script is a file (not inline) so the Content-Security-Policy needs no
# 'unsafe-inline' for scripts.
hashed() { # FILE EXT: renames dist/FILE to NAME.HASH.EXT and prints the new name
  h=$(sha256sum "dist/$1" | cut -c1-16)
  new="${1%.*}.$h.$2"
  mv "dist/$1" "dist/$new"
  echo "$new"
}
WASM=$(hashed app_bg.wasm wasm)
JS=$(hashed app.js js)
cp style.css dist/style.css
CSS=$(hashed style.css css)
printf 'import init from "/%s";\ninit({ module_or_path: "/%s" });\n' "$JS" "$WASM" > dist/boot.js
BOOT=$(hashed boot.js js)
sed -e "s|/style.css|/$CSS|" -e "s|/boot.js|/$BOOT|" index.html > dist/index.html
grep -q "/$BOOT" dist/index.html && grep -q "/$CSS" dist/index.html || { echo "web-ui: index.html lacks the boot script or stylesheet" >&2; exit 1; }
echo "web-ui: built dist/ ($PROFILE, toolchain $WASM_TOOLCHAIN)" >&2
