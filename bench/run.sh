#!/usr/bin/env bash
# One command, one report: the README's Performance figures, every goal a ratio
# against something measured in the same run on the same machine (issue 23).
#
#   ./bench/run.sh     # needs wrk (apt install wrk); BENCH_POSTGRES_URL adds
#                      # PostgreSQL, BENCH_NEXTJS=1 the Next.js 16 peer (npm)
#
# 1. bundle: the release hydrate payload of /pricing, raw and gzip (bench/bundle-size.sh)
# 2. pages (wrk -t2 -c64 -d10s): the bare Leptos page (examples/bare_page.rs: the
#    app's allocator and TCP_NODELAY, nothing else) and, with the Next.js peer,
#    bench/anchors/nextjs; /pricing signed out (kept: one render for the whole
#    run; rendered: a query string the cache does not keep); signed in as 64
#    users on four plans, a cookie per request (bench/cookies.lua), each cookie
#    checked to sign in; /dashboard/billing and /app as the 16 subscribers with
#    two invoices and a purchase (the page cache's templates, every view read
#    fresh; and rendered: a query string the cache does not keep). Any non-2xx
#    answer fails the run.
# 3. write baseline (examples/write_baseline.rs): one transaction per request, an
#    inbox-shaped insert and a subscriptions-shaped upsert, 32 tasks, the app's
#    pool and durability settings, on each database.
# 4. webhook ingest (examples/webhook_ingest.rs): 32 senders, successes only, per
#    event type and as the inbox recorded them; the emulator's API request count
#    during the window must be 0; any failure fails the run.
# 5. usage API (examples/usage_load.rs): POST /api/v1/usage from 32 connections,
#    the ledger checked for overspend afterwards.
# 6. checkout: start_checkout once for each of 50 fresh users, every answer a 303
#    to Checkout, beside the same Stripe calls made straight to the emulator.
# 7. memory: the server's peak RSS (VmHWM) under each load (restarted before it)
#    and over the whole run, sign-ups included.
# Every figure is also a line of JSON; bench/report.py turns them into the summary
# of ratios against the goals and writes them to $BENCH_REPORT
# (default: target/bench-report.json) to compare between commits.
# The bench apps run with REQUIRE_VERIFIED_EMAIL=false: the load generators sign
# up users and check out at once, with no mailbox to confirm from.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:${XDG_CACHE_HOME:-$HOME/.cache}/billing-starter/npm/node_modules/.bin:$PATH"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
WORK="$(mktemp -d)"
APP_PORT=3300 BARE_PORT=3301 PG_PORT=3302 NEXT_PORT=3303 EMU_PORT=12140 PG_EMU_PORT=12141
DURATION="${BENCH_SECONDS:-10}"
export BENCH_JSON="$WORK/figures.jsonl"
REPORT="${BENCH_REPORT:-$TARGET_DIR/bench-report.json}"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt install wrk)" >&2; exit 2; }
echo "# billing-starter benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "## bundle (release hydrate build)"
./bench/bundle-size.sh || true

cargo build --quiet --release --features ssr --bin billing-starter \
  --example bare_page --example webhook_ingest --example usage_load --example write_baseline
cargo build --quiet --release -p stripe-emulator --bin stripe-emulator
# bundle-size.sh built the release front end (target/site); the server is built above.
[[ -f target/site/pkg/billing-starter.wasm ]] || echo "(no release front end built; pages render without the wasm)"
BIN="$TARGET_DIR/release/billing-starter"
EXAMPLES="$TARGET_DIR/release/examples"

figure() { echo "$1" >>"$BENCH_JSON"; }
start_app() { # port emulator_port database_url
  RUST_LOG=error "$TARGET_DIR/release/stripe-emulator" --port "$2" \
    --forward-to "http://127.0.0.1:$1/api/stripe/webhooks" --webhook-secret whsec_emulator_local \
    >"$WORK/emulator-$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$2/_emulator/health" >/dev/null && break; sleep 0.1; done
  APP_ENV=development APP_URL="http://127.0.0.1:$1" LEPTOS_SITE_ADDR="127.0.0.1:$1" \
  LEPTOS_SITE_ROOT="$TARGET_DIR/site" DATABASE_URL="$3" RUST_LOG=error SIGN_UP_LIMIT_PER_IP=1000 \
  REQUIRE_VERIFIED_EMAIL=false \
  STRIPE_API_BASE="http://127.0.0.1:$2/" STRIPE_EMULATOR_SNAPSHOT="$WORK/emulator-$1.json" \
    "$BIN" serve >"$WORK/app-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "app on :$1 did not start" >&2; cat "$WORK/app-$1.log" >&2; exit 1
}
# wrk_line label key url [cookies-file] [pid]: one page under load; a JSON figure
# with its requests/s, percentiles, non-2xx count and (with a pid) peak RSS.
wrk_line() {
  local out script=() rate p50 p99 bad
  [[ -n "${4:-}" ]] && script=(-s bench/cookies.lua)
  [[ -n "${5:-}" ]] && rss_reset "$5"
  out=$(wrk -t2 -c64 -d"${DURATION}s" --latency "${script[@]}" "$3" ${4:+-- "$4"})
  rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)
  printf '%-34s %10s req/s   p50 %8s   p99 %8s   non-2xx %s%s\n' "$1" "$rate" "$p50" "$p99" "$bad" \
    "${5:+   peak RSS $(rss "$5") MB}"
  figure "{\"figure\": \"page\", \"key\": \"$2\", \"label\": \"$1\", \"per_second\": $rate, \"p50\": \"$p50\", \"p99\": \"$p99\", \"non_2xx\": $bad${5:+, \"peak_rss_mb\": $(rss "$5")}}"
  if (( bad > 0 )); then echo "$1: $bad answers were not 2xx" >&2; exit 1; fi
}
rss() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# The whole run's peak, across the per-load restarts below.
WHOLE_PEAK=0
fold_peak() { WHOLE_PEAK=$(python3 -c "print(max($WHOLE_PEAK, $1))"); }
# Restarts the peak (VmHWM) at the current RSS, so a figure is the peak under the
# load that follows; a server's peak so far goes into the whole run's first (the
# bare page's and the Next.js peer's are theirs, not the server's).
rss_reset() {
  if [[ "$1" == "$APP_PID" || "$1" == "${PG_PID:-}" ]]; then fold_peak "$(rss "$1")"; fi
  echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "(cannot reset VmHWM; peaks include set-up)" >&2
}
# Ingest restarts the peak itself after its sign-ups and reports the one before.
ingest() { # label port emulator_port database_url pid
  local line
  echo -n "$1 "
  line=$("$EXAMPLES/webhook_ingest" --app "http://127.0.0.1:$2" \
    --stripe "http://127.0.0.1:$3/" --secret whsec_emulator_local --seconds "$DURATION" \
    --server-pid "$5" --database-url "$4")
  echo "$line"
  figure "$line"
  fold_peak "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['server_peak_rss_before_mb'])" "$line")"
}
jsonl() { # command...: prints and collects each JSON line it writes; its failure fails the run
  local out="$WORK/out.jsonl" line
  "$@" >"$out"
  while IFS= read -r line; do echo "$line"; figure "$line"; done <"$out"
}

"$EXAMPLES/bare_page" "127.0.0.1:$BARE_PORT" & pids+=($!)
BARE_PID=${pids[-1]}
start_app "$APP_PORT" "$EMU_PORT" "sqlite://$WORK/bench.db?mode=rwc"
APP_PID=${pids[-1]}

if [[ "${BENCH_NEXTJS:-}" == 1 ]]; then
  (cd bench/anchors/nextjs && { [[ -d node_modules ]] || npm ci --no-audit --no-fund >/dev/null; } &&
    NEXT_TELEMETRY_DISABLED=1 npx next build >"$WORK/next-build.log" 2>&1) ||
    { cat "$WORK/next-build.log" >&2; exit 1; }
  (cd bench/anchors/nextjs && NODE_ENV=production NEXT_TELEMETRY_DISABLED=1 \
    exec node node_modules/next/dist/bin/next start -p "$NEXT_PORT" -H 127.0.0.1 >"$WORK/next.log" 2>&1) &
  pids+=($!)
  NEXT_PID=${pids[-1]}
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$NEXT_PORT/pricing" >/dev/null && break; sleep 0.2; done
fi

echo
echo "## users (signed up and subscribed through the app's own checkout)"
jsonl python3 bench/users.py signed-in "http://127.0.0.1:$APP_PORT" "http://127.0.0.1:$EMU_PORT" "$WORK"
echo "server peak RSS so far (sign-ups and checkouts): $(rss "$APP_PID") MB"

echo
echo "## pages (wrk -t2 -c64 -d${DURATION}s)"
wrk_line "bare Leptos page" bare "http://127.0.0.1:$BARE_PORT/" "" "$BARE_PID"
if [[ -n "${NEXT_PID:-}" ]]; then
  wrk_line "Next.js 16 page (peer)" nextjs "http://127.0.0.1:$NEXT_PORT/pricing" "" "$NEXT_PID"
fi
wrk_line "/pricing signed out, kept" pricing_kept "http://127.0.0.1:$APP_PORT/pricing" "" "$APP_PID"
wrk_line "/pricing signed out, rendered" pricing_rendered "http://127.0.0.1:$APP_PORT/pricing?bench=render" "" "$APP_PID"
wrk_line "/pricing signed in (64 users)" pricing_signed_in "http://127.0.0.1:$APP_PORT/pricing" "$WORK/cookies-all.txt" "$APP_PID"
wrk_line "/dashboard/billing (16 subscribers)" dashboard "http://127.0.0.1:$APP_PORT/dashboard/billing" "$WORK/cookies-paying.txt" "$APP_PID"
wrk_line "/dashboard/billing, rendered" dashboard_rendered "http://127.0.0.1:$APP_PORT/dashboard/billing?bench=render" "$WORK/cookies-paying.txt" "$APP_PID"
wrk_line "/app (16 subscribers)" app "http://127.0.0.1:$APP_PORT/app" "$WORK/cookies-paying.txt" "$APP_PID"
wrk_line "/app, rendered" app_rendered "http://127.0.0.1:$APP_PORT/app?bench=render" "$WORK/cookies-paying.txt" "$APP_PID"

echo
echo "## write baseline, webhook ingest and usage API (32 concurrent, ${DURATION}s)"
jsonl "$EXAMPLES/write_baseline" --database-url "sqlite://$WORK/bench.db?mode=rwc" --seconds "$DURATION"
ingest "SQLite ingest:" "$APP_PORT" "$EMU_PORT" "sqlite://$WORK/bench.db?mode=rwc" "$APP_PID"
rss_reset "$APP_PID"
jsonl "$EXAMPLES/usage_load" --app "http://127.0.0.1:$APP_PORT" \
  --database-url "sqlite://$WORK/bench.db?mode=rwc" --seconds "$DURATION"
echo "server peak RSS under the usage API: $(rss "$APP_PID") MB"
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
  db="bench_$$"
  psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
  PG_URL="${BENCH_POSTGRES_URL%/*}/$db"
  start_app "$PG_PORT" "$PG_EMU_PORT" "$PG_URL"
  PG_PID=${pids[-1]}
  jsonl "$EXAMPLES/write_baseline" --database-url "$PG_URL" --seconds "$DURATION"
  ingest "PostgreSQL ingest:" "$PG_PORT" "$PG_EMU_PORT" "$PG_URL" "$PG_PID"
  jsonl "$EXAMPLES/usage_load" --app "http://127.0.0.1:$PG_PORT" --database-url "$PG_URL" --seconds "$DURATION"
  kill "$PG_PID"; sleep 0.5
  psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
fi

echo
echo "## checkout server function (50 fresh users, one call each)"
rss_reset "$APP_PID"
jsonl python3 bench/users.py checkout "http://127.0.0.1:$APP_PORT" "http://127.0.0.1:$EMU_PORT" 50
fold_peak "$(rss "$APP_PID")"
echo "server peak RSS under checkout: $(rss "$APP_PID") MB; over the whole run: $WHOLE_PEAK MB"
figure "{\"figure\": \"server peak RSS, whole run\", \"mb\": $WHOLE_PEAK}"

echo
python3 bench/report.py "$BENCH_JSON" "$REPORT"
