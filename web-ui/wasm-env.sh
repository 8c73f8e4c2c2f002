# Sourced by build.sh right before the wasm build (POSIX sh). Picks the toolchain:
# path A, rustup with the wasm32-unknown-unknown std (added here when missing); or
# path B, Debian's rustc-web + rust-web-src rebuilding std with build-std, linked by
# wasm-ld-16. Only environment variables change, so nothing leaks into native builds.
WASM_TARGET=wasm32-unknown-unknown
_wasm_std_ok() { _s=$(env -u RUSTC rustc --print sysroot 2>/dev/null) && [ -d "$_s/lib/rustlib/$WASM_TARGET/lib" ]; }
unset RUSTC RUSTDOC RUSTC_BOOTSTRAP CARGO_UNSTABLE_BUILD_STD CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER
if [ -z "${WASM_FORCE_DEBIAN:-}" ] && { _wasm_std_ok || { [ -z "${WASM_NO_RUSTUP_ADD:-}" ] \
     && command -v rustup >/dev/null 2>&1 \
     && timeout 300 rustup target add "$WASM_TARGET" >/dev/null 2>&1 && _wasm_std_ok; }; }; then
  WASM_TOOLCHAIN=rustup
else
  WASM_TOOLCHAIN=debian
  _need=""; for _p in rustc-web cargo-web rust-web-src lld-16; do dpkg -s "$_p" >/dev/null 2>&1 || _need="$_need $_p"; done
  if [ -n "$_need" ]; then
    _sudo=""; [ "$(id -u)" -eq 0 ] || _sudo=sudo
    $_sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq $_need >/dev/null
  fi
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
  export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-16
fi
export WASM_TOOLCHAIN
echo "web-ui: wasm toolchain $WASM_TOOLCHAIN ($(${RUSTC:-rustc} --version))" >&2
