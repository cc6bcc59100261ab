#!/usr/bin/env python3
"""The benchmark's users, made the way customers make them (bench/run.sh).

  users.py signed-in APP EMU DIR   sign up users on four plans, check each cookie
                                   signs in, write DIR/cookies-all.txt (everyone)
                                   and DIR/cookies-paying.txt (subscribers with
                                   two invoices and a purchase)
  users.py checkout APP EMU N      time start_checkout for N fresh users (one
                                   call each, every answer checked), beside the
                                   same Stripe calls made straight to the emulator

Only the standard library: the bench needs nothing installed but wrk.
"""
import json
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "correct horse battery"
STRIPE_KEY = "Bearer sk_test_bench"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(url, data=None, headers=None):
    """(status, headers, body) of one request; redirects are answers, not followed."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with OPENER.open(req) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def sign_up(app, email):
    """The session cookie of a new user (posted from the app's own origin)."""
    status, headers, _ = request(
        f"{app}/api/sign_up", {"email": email, "password": PASSWORD}, {"Origin": app}
    )
    cookies = [c.split(";")[0] for c in headers.get_all("Set-Cookie") or []]
    cookie = next((c for c in cookies if c.startswith("billing_session=")), None)
    if status >= 400 or cookie is None:
        sys.exit(f"sign-up of {email} failed: {status}")
    return cookie


def checkout_url(app, cookie, plan, interval):
    status, headers, body = request(
        f"{app}/api/start_checkout",
        {"plan": plan, "interval": interval},
        # As a browser posts the pricing page's form (without JavaScript).
        {"Cookie": cookie, "Origin": app, "Accept": "text/html"},
    )
    location = headers.get("Location") or ""
    # The form post's answer: a redirect to the Checkout page.
    if status not in (302, 303) or "/checkout/" not in location:
        sys.exit(f"start_checkout {plan} answered {status} {location!r}: {body[:200]}")
    return location


def pay(url, email):
    status, _, body = request(url, {"card_number": "4242424242424242", "email": email})
    if status >= 400:
        sys.exit(f"paying at {url} failed: {status} {body[:200]}")


def emulator(emu, path, data=None, key=None):
    headers = {"Authorization": STRIPE_KEY}
    if key:
        headers["Idempotency-Key"] = key
    status, _, body = request(f"{emu}/v1/{path}", data, headers)
    if status >= 400:
        sys.exit(f"emulator {path}: {status} {body[:200]}")
    return json.loads(body)


def rows(page, testid):
    """Body rows of the table marked data-testid=testid (0 when it is absent)."""
    start = page.find(f'data-testid="{testid}"')
    if start < 0:
        return 0
    table = page[start : page.find("</table>", start)]
    return max(table.count("<tr") - 1, 0)


def wait_for(check, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def signed_in(app, emu, out, per_plan=16):
    """Four kinds of user, `per_plan` each: free; one pack bought; Premium monthly
    with a pack; Premium yearly with a pack. A month on the emulator's clock then
    renews the monthly subscriptions, so their accounts hold two invoices."""
    run = f"{int(time.time())}"
    users = []  # (email, cookie, plan)
    for kind in ("free", "pack", "monthly", "yearly"):
        for i in range(per_plan):
            email = f"bench-{kind}-{run}-{i}@example.com"
            cookie = sign_up(app, email)
            if kind in ("monthly", "yearly"):
                pay(checkout_url(app, cookie, "premium", kind), email)
            if kind != "free":
                pay(checkout_url(app, cookie, "standard_pack", "one_time"), email)
            users.append((email, cookie, kind))
    advance = urllib.request.Request(
        f"{emu}/_emulator/advance",
        data=json.dumps({"seconds": 32 * 86400}).encode(),
        headers={"Content-Type": "application/json"},
    )
    OPENER.open(advance).read()

    for email, cookie, kind in users:
        # The cookie really signs in: the page names its user.
        _, _, page = request(f"{app}/pricing", headers={"Cookie": cookie})
        if email not in page:
            sys.exit(f"the cookie of {email} does not sign in")
    paying = [(e, c) for e, c, k in users if k == "monthly"]

    def settled():
        for _, cookie in paying:
            _, _, page = request(f"{app}/dashboard/billing", headers={"Cookie": cookie})
            if "Premium" not in page or rows(page, "invoices") < 2 or rows(page, "purchases") < 1:
                return False
        return True

    wait_for(settled, "the subscribers' renewal invoices and purchases on /dashboard/billing")
    with open(f"{out}/cookies-all.txt", "w") as f:
        f.writelines(f"{c}\n" for _, c, _ in users)
    with open(f"{out}/cookies-paying.txt", "w") as f:
        f.writelines(f"{c}\n" for _, c in paying)
    print(
        json.dumps(
            {
                "figure": "signed-in users",
                "users": len(users),
                "plans": {k: per_plan for k in ("free", "pack", "monthly", "yearly")},
                "paying_with_two_invoices_and_a_purchase": len(paying),
            }
        )
    )


def checkout(app, emu, n):
    """start_checkout once for each of n fresh users (a new Stripe customer and
    Checkout Session each), every answer a 303 to a Checkout page; then the same
    Stripe calls (customer search, customer create, session create) straight to
    the emulator with fresh keys."""
    run = f"{int(time.time())}"
    cookies = [(f"bench-co-{run}-{i}@example.com", None) for i in range(n)]
    cookies = [(email, sign_up(app, email)) for email, _ in cookies]
    calls_before = emulator_requests(emu)
    app_times = []
    for email, cookie in cookies:
        started = time.perf_counter()
        checkout_url(app, cookie, "premium", "monthly")
        app_times.append((time.perf_counter() - started) * 1000)
    calls = (emulator_requests(emu) - calls_before) / n
    price = emulator(emu, "prices?lookup_keys[]=premium_monthly")["data"][0]["id"]
    emu_times = []
    for i in range(n):
        email = f"bench-direct-{run}-{i}@example.com"
        started = time.perf_counter()
        emulator(emu, "customers/search?" + urllib.parse.urlencode({"query": f"email:'{email}'"}))
        customer = emulator(
            emu, "customers", {"email": email, "metadata[account_id]": str(i)}, f"direct-c-{run}-{i}"
        )["id"]
        emulator(
            emu,
            "checkout/sessions",
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(i),
                "line_items[0][price]": price,
                "line_items[0][quantity]": "1",
                "success_url": "http://x/ok?session_id={CHECKOUT_SESSION_ID}",
                "cancel_url": "http://x/no",
                "allow_promotion_codes": "true",
                "metadata[account_id]": str(i),
                "subscription_data[metadata][account_id]": str(i),
            },
            f"direct-s-{run}-{i}",
        )
        emu_times.append((time.perf_counter() - started) * 1000)
    a, e = statistics.median(app_times), statistics.median(emu_times)
    print(
        json.dumps(
            {
                "figure": "start_checkout",
                "fresh_users": n,
                "p50_ms": round(a, 2),
                "emulator_alone_p50_ms": round(e, 2),
                "ours_ms": round(a - e, 2),
                "stripe_calls_per_checkout": calls,
            }
        )
    )


def emulator_requests(emu):
    with OPENER.open(f"{emu}/_emulator/requests") as resp:
        return json.load(resp)["count"]


if __name__ == "__main__":
    command, app, emu = sys.argv[1], sys.argv[2], sys.argv[3]
    if command == "signed-in":
        signed_in(app, emu, sys.argv[4])
    elif command == "checkout":
        checkout(app, emu, int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {command}")
