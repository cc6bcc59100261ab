#!/usr/bin/env bash
# The browser's share of the pricing page: the release hydrate build (wasm-release
# profile: opt-level "z", LTO, one codegen unit, panic=abort), through wasm-bindgen
# and wasm-opt -Oz, then measured raw and gzip -9. Prints one line per file and
# the total; exits 1 when the gzip total exceeds BUNDLE_BUDGET_KB (default 150).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BUDGET_KB="${BUNDLE_BUDGET_KB:-150}"
OUT="$TARGET_DIR/bundle-size"

cargo build --quiet --lib -p billing-starter --target wasm32-unknown-unknown \
  --profile wasm-release --no-default-features --features hydrate
rm -rf "$OUT" && mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$OUT" --out-name billing-starter \
  "$TARGET_DIR/wasm32-unknown-unknown/wasm-release/billing_starter.wasm"
wasm-opt -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals -o "$OUT/optimized.wasm" "$OUT/billing-starter_bg.wasm"
mv "$OUT/optimized.wasm" "$OUT/billing-starter_bg.wasm"

total_raw=0
total_gz=0
for file in "$OUT/billing-starter_bg.wasm" "$OUT/billing-starter.js"; do
  raw=$(stat -c %s "$file")
  gz=$(gzip -9 -c "$file" | wc -c)
  total_raw=$((total_raw + raw))
  total_gz=$((total_gz + gz))
  printf '%-28s %8d B raw %8d B gzip\n' "$(basename "$file")" "$raw" "$gz"
done
printf '%-28s %8d B raw %8d B gzip (budget %d KB)\n' total "$total_raw" "$total_gz" "$BUDGET_KB"
if (( total_gz > BUDGET_KB * 1024 )); then
  echo "bundle over budget: $((total_gz / 1024)) KB gzip > $BUDGET_KB KB" >&2
  exit 1
fi
