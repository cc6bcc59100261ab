#!/usr/bin/env bash
# The browser's share of the pricing page, as shipped: the release hydrate build
# made by cargo-leptos itself (wasm-release profile: opt-level "z", LTO, one codegen
# unit, panic=abort; wasm-bindgen, wasm-opt -Oz, JS minified; split into lazy
# chunks), measured raw and gzip -9.
#
# The pricing page loads the main wasm and JS and the split loader; its islands
# (PricingGrid, HydrationMarker) are not lazy, so no chunk; neither has props, so the
# page ships no JSON decoder. Islands of other pages
# are `#[island(lazy)]` and load their chunks (listed in the manifest) only there;
# they are printed for information. Exits 1 when the pricing page's gzip total
# exceeds BUNDLE_BUDGET_KB (default 120, issue 23's goal; 1 KB = 1,024 bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET_KB="${BUNDLE_BUDGET_KB:-120}"
# The islands on /pricing, as wasm-split names their loaders if they become lazy.
PRICING_ISLANDS_RE='^(pricing_grid|hydration_marker)_loader_'

# Into a site of its own: the served one (`target/site`) keeps the front end that
# matches the debug server beside it. A release wasm there crashed the debug
# server's pricing grid on hydration (`RuntimeError: unreachable`).
SITE="target/bundle-site"
LEPTOS_SITE_ROOT="$SITE" cargo leptos build --release --split --frontend-only >/dev/null
PKG="$SITE/pkg"

gz() { gzip -9 -c "$1" | wc -c; }

total_raw=0
total_gz=0
count() {
  local file="$PKG/$1" raw gzb
  raw=$(stat -c %s "$file")
  gzb=$(gz "$file")
  total_raw=$((total_raw + raw))
  total_gz=$((total_gz + gzb))
  printf '  %-44s %8d B raw %8d B gzip\n' "$1" "$raw" "$gzb"
}

manifest="$PKG/__wasm_split_manifest.json"
echo "pricing page:"
count billing-starter.wasm
count billing-starter.js
count "__wasm_split.______________________.js"
# Any chunk a pricing island would need (none while they are not lazy).
for chunk in $(python3 - "$manifest" "$PRICING_ISLANDS_RE" <<'EOF'
import json, re, sys
manifest, pattern = json.load(open(sys.argv[1])), re.compile(sys.argv[2])
print(" ".join(sorted({c for name, chunks in manifest.items() if pattern.match(name) for c in chunks})))
EOF
); do
  count "$chunk.wasm"
done
printf '  %-44s %8d B raw %8d B gzip (budget %d KB)\n' total "$total_raw" "$total_gz" "$BUDGET_KB"
# bench/run.sh collects every figure as a line of JSON.
if [[ -n "${BENCH_JSON:-}" ]]; then
  printf '{"figure": "pricing payload", "raw_bytes": %d, "gzip_bytes": %d}\n' "$total_raw" "$total_gz" >>"$BENCH_JSON"
fi

echo "lazy islands of other pages (loaded there on top of the above):"
python3 - "$manifest" "$PKG" <<'EOF'
import gzip, json, os, sys
manifest, pkg = json.load(open(sys.argv[1])), sys.argv[2]
for name, chunks in sorted(manifest.items()):
    size = sum(len(gzip.compress(open(os.path.join(pkg, c + ".wasm"), "rb").read(), 9)) for c in chunks)
    print(f"  {name.split('_loader_')[0]:<44} {size:8d} B gzip in {len(chunks)} file(s)")
EOF

if (( total_gz > BUDGET_KB * 1024 )); then
  echo "bundle over budget: $((total_gz / 1024)) KB gzip > $BUDGET_KB KB" >&2
  exit 1
fi
