#!/usr/bin/env bash
# One entry point for people and CI.
#
#   ./bootstrap.sh serve   install what is missing, then serve the app at http://127.0.0.1:3000
#   ./bootstrap.sh test    install what is missing, then run every check (fmt, clippy x2,
#                          tests on SQLite and, with TEST_POSTGRES_URL set, PostgreSQL,
#                          then Playwright in headless Chromium)
#
# Tools are installed only when absent or at the wrong version, so a second run
# starts at once. Versions are pinned to what is proven to build offline here.
set -euo pipefail

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
# The official library the webhook signature check is compared with (tests/webhooks.rs).
STRIPE_PYTHON_VERSION=16.1.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/billing-starter"
cd "$ROOT"

# CI works in a fresh clone: keep the build outside it so consecutive runs on one
# machine reuse it (a new machine still builds from scratch).
if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="$CACHE_DIR/target"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export PATH="$HOME/.cargo/bin:$CACHE_DIR/npm/node_modules/.bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# wasm-bindgen's CLI must equal the crate version in Cargo.lock, or hydration breaks.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_rust_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [[ "$(cargo leptos --version 2>/dev/null || true)" != *" $CARGO_LEPTOS_VERSION"* ]]; then
    step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes on 2 cores)"
    cargo install --locked "cargo-leptos@$CARGO_LEPTOS_VERSION"
  fi
  local wb
  wb="$(wasm_bindgen_version)"
  if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb"* ]]; then
    step "installing wasm-bindgen-cli $wb"
    # --locked fails for this release (a locked dependency left the registry).
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$wb"
  fi
  if [[ "$(wasm-opt --version 2>/dev/null || true)" != *"version $BINARYEN_VERSION"* ]]; then
    step "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
    # A private prefix: no root needed, and Debian's older binaryen is left alone.
    mkdir -p "$CACHE_DIR/npm"
    npm install --prefix "$CACHE_DIR/npm" --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
}

ensure_e2e_tools() {
  if ! have chromium; then
    step "installing Chromium from apt"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [[ ! -d end2end/node_modules/@playwright/test ]] ||
     [[ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]]; then
    step "installing Playwright (npm ci, no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

ensure_test_tools() {
  if ! have promtool; then
    step "installing promtool from apt (checks /metrics and docs/alerts.yml)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  local target="$CACHE_DIR/python/stripe-$STRIPE_PYTHON_VERSION"
  if [[ ! -d "$target/stripe" ]]; then
    step "installing stripe-python $STRIPE_PYTHON_VERSION (the signature check's reference)"
    python3 -m pip install --quiet --disable-pip-version-check --target "$target" \
      "stripe==$STRIPE_PYTHON_VERSION"
  fi
  export STRIPE_PYTHON_PATH="$target"
}

serve() {
  ensure_rust_tools
  [[ -f .env ]] || step "no .env: using defaults (SQLite in data/, Stripe emulator); see .env.example"
  step "building and serving at http://127.0.0.1:3000"
  # --split: islands of other pages are lazy chunks (see README, Performance).
  exec cargo leptos serve --split
}

run_checks() {
  ensure_rust_tools
  ensure_e2e_tools
  ensure_test_tools

  step "cargo fmt --check"
  cargo fmt --all -- --check

  step "clippy (ssr: server, migrations, tests)"
  cargo clippy --workspace --all-targets --features billing-starter/ssr -- -D warnings

  step "clippy (hydrate: the wasm bundle)"
  cargo clippy -p billing-starter --lib --no-default-features --features hydrate \
    --target wasm32-unknown-unknown -- -D warnings

  if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then
    step "unit and integration tests (SQLite and PostgreSQL at ${TEST_POSTGRES_URL%%@*}@…)"
  else
    step "unit and integration tests (SQLite; set TEST_POSTGRES_URL to add PostgreSQL)"
  fi
  cargo test --workspace --features billing-starter/ssr

  step "building the app for end-to-end tests"
  cargo leptos build --split

  step "Playwright end-to-end tests (headless Chromium)"
  (cd end2end && APP_BIN="$TARGET_DIR/debug/billing-starter" npx playwright test)

  # The pricing page's browser payload in the release build (issue 23: 120 KB gzip).
  step "bundle size (release hydrate build; budget ${BUNDLE_BUDGET_KB:-120} KB gzip)"
  ./bench/bundle-size.sh

  step "all checks passed"
}

case "${1:-}" in
  serve) serve ;;
  test) run_checks ;;
  *)
    echo "usage: $0 serve | test" >&2
    exit 64
    ;;
esac
