#!/usr/bin/env bash
# One command, one report: the numbers of the README's Performance section,
# measured the same way every time on this machine.
#
#   ./bench/run.sh            # needs wrk (apt install wrk) and a release build
#
# 1. bundle: release hydrate payload, raw and gzip (bench/bundle-size.sh)
# 2. SSR: wrk -t2 -c64 -d10s on a bare Leptos page (examples/bare_page.rs, with the
#    app's allocator and TCP_NODELAY) and on /pricing signed out (the kept template,
#    and rendered every time) and signed in, in the same run
# 3. webhook ingest: examples/webhook_ingest.rs, 32 senders for 10 s, on SQLite and
#    (with BENCH_POSTGRES_URL) PostgreSQL
# 3b. usage API: examples/usage_load.rs, POST /api/v1/usage from 32 connections
#    beside a one-insert-per-transaction baseline on the same database, and the
#    ledger checked for overspend afterwards
# 4. checkout server function: p50 of start_checkout minus p50 of the same
#    Checkout Session call made directly to the emulator
# 5. server resident memory under the loads: VmHWM, the peak, restarted after
#    set-up (one sign-up). The emulator runs as its own process (the app shares
#    one already listening on its port), so the figure is the app's alone.
# The bench apps run with REQUIRE_VERIFIED_EMAIL=false: the load generators sign
# up users and check out at once, with no mailbox to confirm from.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:${XDG_CACHE_HOME:-$HOME/.cache}/billing-starter/npm/node_modules/.bin:$PATH"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
WORK="$(mktemp -d)"
APP_PORT=3300 BARE_PORT=3301 PG_PORT=3302 EMU_PORT=12140 PG_EMU_PORT=12141
DURATION="${BENCH_SECONDS:-10}"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt install wrk)" >&2; exit 2; }
echo "# billing-starter benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
echo
echo "## bundle (release hydrate build)"
./bench/bundle-size.sh || true

cargo build --quiet --release --features ssr --bin billing-starter --example bare_page --example webhook_ingest --example usage_load
cargo build --quiet --release -p stripe-emulator --bin stripe-emulator
# bundle-size.sh built the release front end (target/site); the server is built above.
[[ -f target/site/pkg/billing-starter.wasm ]] || echo "(no release front end built; pages render without the wasm)"
BIN="$TARGET_DIR/release/billing-starter"

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
wrk_line() { # label url [cookie]
  local out
  if [[ -n "${3:-}" ]]; then
    out=$(wrk -t2 -c64 -d"${DURATION}s" --latency -H "Cookie: $3" "$2")
  else
    out=$(wrk -t2 -c64 -d"${DURATION}s" --latency "$2")
  fi
  printf '%-26s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)"
}
rss() { awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
# Restarts the peak (VmHWM) at the current RSS, so a figure is the peak under the
# load that follows, not a one-off before it (argon2id's 19 MiB for the sign-up).
rss_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "(cannot reset VmHWM; peaks include set-up)" >&2; }

"$TARGET_DIR/release/examples/bare_page" "127.0.0.1:$BARE_PORT" & pids+=($!)
start_app "$APP_PORT" "$EMU_PORT" "sqlite://$WORK/bench.db?mode=rwc"
APP_PID=${pids[-1]}
# Posts come from the app's own pages (cross-site writes are refused with 403).
curl -s -c "$WORK/cookies" -o /dev/null -H "Origin: http://127.0.0.1:$APP_PORT" \
  -d "email=bench@example.com&password=correct+horse+battery" \
  "http://127.0.0.1:$APP_PORT/api/sign_up"
[[ -n "$(awk '$6 == "billing_session" {print $7}' "$WORK/cookies")" ]] ||
  { echo "bench sign-up failed: no session cookie" >&2; exit 1; }
COOKIE="billing_session=$(awk '$6 == "billing_session" {print $7}' "$WORK/cookies")"
echo
echo "server RSS after start-up and one sign-up: $(rss "$APP_PID") peak"

echo
echo "## SSR (wrk -t2 -c64 -d${DURATION}s)"
wrk_line "bare Leptos page" "http://127.0.0.1:$BARE_PORT/"
# The sign-up's hashing memory went with its idle blocking thread (10 s) meanwhile.
rss_reset "$APP_PID"
# Signed out, /pricing is the kept template for the whole run (one render);
# a query string the cache does not keep renders it every time.
wrk_line "/pricing signed out, kept" "http://127.0.0.1:$APP_PORT/pricing"
wrk_line "/pricing signed out, rendered" "http://127.0.0.1:$APP_PORT/pricing?bench=render"
# The cookie must really sign in: the page then names the user.
signed_in_page=$(curl -fs -H "Cookie: $COOKIE" "http://127.0.0.1:$APP_PORT/pricing")
[[ "$signed_in_page" == *"bench@example.com"* ]] ||
  { echo "the bench cookie does not sign in" >&2; exit 1; }
wrk_line "/pricing signed in" "http://127.0.0.1:$APP_PORT/pricing" "$COOKIE"
echo "server peak RSS under SSR: $(rss "$APP_PID")"

echo
echo "## webhook ingest (32 senders, ${DURATION}s; subscription and invoice events; server_peak_rss_mb: under the load)"
echo -n "SQLite:     "
"$TARGET_DIR/release/examples/webhook_ingest" --app "http://127.0.0.1:$APP_PORT" \
  --stripe "http://127.0.0.1:$EMU_PORT/" --secret whsec_emulator_local --seconds "$DURATION" \
  --server-pid "$APP_PID"
echo
echo "## usage API, SQLite (32 connections, ${DURATION}s, 8 accounts; baseline: one insert per transaction, same database)"
"$TARGET_DIR/release/examples/usage_load" --app "http://127.0.0.1:$APP_PORT" \
  --database-url "sqlite://$WORK/bench.db?mode=rwc" --seconds "$DURATION"
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
  db="bench_$$"
  psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
  start_app "$PG_PORT" "$PG_EMU_PORT" "${BENCH_POSTGRES_URL%/*}/$db"
  PG_PID=${pids[-1]}
  echo -n "PostgreSQL: "
  "$TARGET_DIR/release/examples/webhook_ingest" --app "http://127.0.0.1:$PG_PORT" \
    --stripe "http://127.0.0.1:$PG_EMU_PORT/" --secret whsec_emulator_local --seconds "$DURATION" \
    --server-pid "$PG_PID"
  echo "usage API, PostgreSQL (32 connections, ${DURATION}s, 8 accounts; baseline: one insert per transaction, same database):"
  "$TARGET_DIR/release/examples/usage_load" --app "http://127.0.0.1:$PG_PORT" \
    --database-url "${BENCH_POSTGRES_URL%/*}/$db" --seconds "$DURATION"
  kill "$PG_PID"; sleep 0.5
  psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
fi

echo
echo "## checkout server function (50 sequential calls, same user; the limit is 60 a minute)"
python3 - "$APP_PORT" "$EMU_PORT" "$COOKIE" <<'PY'
import sys, time, urllib.request, urllib.parse, json, statistics
app, emu, cookie = sys.argv[1], sys.argv[2], sys.argv[3]
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)
def post(url, data, headers):
    req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), headers=headers)
    t = time.perf_counter()
    try: resp = opener.open(req); body = resp.read()
    except urllib.error.HTTPError as e: body = e.read()
    return (time.perf_counter() - t) * 1000, body
app_times = [post(f"http://127.0.0.1:{app}/api/start_checkout", {"plan": "premium", "interval": "monthly"}, {"Cookie": cookie, "Origin": f"http://127.0.0.1:{app}"})[0] for _ in range(50)]
# The same Checkout Session request the app makes, straight to the emulator.
prices = json.load(opener.open(urllib.request.Request(f"http://127.0.0.1:{emu}/v1/prices?lookup_keys[]=premium_monthly", headers={"Authorization": "Bearer sk_test_bench"})))
price = prices["data"][0]["id"]
customers = json.load(opener.open(urllib.request.Request(f"http://127.0.0.1:{emu}/v1/customers/search?query=email:'bench@example.com'", headers={"Authorization": "Bearer sk_test_bench"})))
customer = customers["data"][0]["id"]
form = {"mode": "subscription", "customer": customer, "client_reference_id": "1", "line_items[0][price]": price,
        "line_items[0][quantity]": "1", "success_url": "http://x/ok?session_id={CHECKOUT_SESSION_ID}", "cancel_url": "http://x/no",
        "allow_promotion_codes": "true", "metadata[application_user_id]": "1", "metadata[plan_conceptual_id]": "premium",
        "subscription_data[metadata][application_user_id]": "1", "subscription_data[metadata][plan_conceptual_id]": "premium"}
emu_times = [post(f"http://127.0.0.1:{emu}/v1/checkout/sessions", form, {"Authorization": "Bearer sk_test_bench", "Idempotency-Key": "bench-checkout"})[0] for _ in range(50)]
a, e = statistics.median(app_times), statistics.median(emu_times)
print(f"start_checkout p50 {a:.2f} ms (whole request); emulator alone p50 {e:.2f} ms; ours ≈ {a - e:.2f} ms")
PY
echo "server peak RSS under SQLite ingest and checkout: $(rss "$APP_PID")"
