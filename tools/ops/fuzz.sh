#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `just fuzz [SECONDS]`.
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Targets build without a sanitizer (our code is safe
# Rust; what we look for are panics) and with debug assertions (overflow).
# New inputs go to tools/fuzz/target/corpus/<target>; the committed seeds in
# tools/fuzz/corpus/<target> are read, never written. A crash stops the run and
# leaves its input in tools/fuzz/artifacts/<target>/.
set -euo pipefail
seconds="${1:-30}"
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cd tools/fuzz
targets=$(cargo fuzz list)
echo "==> building fuzz targets: $(echo $targets)"
cargo fuzz build --sanitizer none --debug-assertions
for target in $targets; do
  mkdir -p "target/corpus/$target"
  echo "==> fuzzing $target for ${seconds}s"
  cargo fuzz run --sanitizer none --debug-assertions "$target" \
    "target/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|thread '|panicked|.*deadly signal|artifact_prefix|Test unit written)" || true
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    echo "fuzz target $target crashed: see tools/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s without a crash"
