#!/usr/bin/env python3
"""bench/run.sh's summary: each goal of issue 23 as a ratio of two figures
measured in the same run, and the whole report as JSON to compare commits.

  report.py FIGURES.jsonl REPORT.json
"""
import json
import os
import platform
import subprocess
import sys
import time


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ms(text):
    """wrk's latency ("812.00us", "2.31ms", "1.02s") in milliseconds."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def main(figures_path, report_path):
    figures = load(figures_path)
    pages = {f["key"]: f for f in figures if f["figure"] == "page"}
    by = lambda name, backend=None: next(  # noqa: E731
        (f for f in figures if f["figure"] == name and f.get("backend", backend) == backend), None
    )
    rows = []  # (figure, measured text, goal text, met: bool | None, value)

    def ratio(label, num, den, goal, unit="%"):
        if num is None or den is None or not den:
            rows.append((label, "not measured", goal_text(goal, unit), None, None))
            return
        value = num / den * (100 if unit == "%" else 1)
        shown = f"{value:.0f} %" if unit == "%" else f"{value:.1f}×"
        rows.append((label, shown, goal_text(goal, unit), None if goal is None else value >= goal, value))

    def goal_text(goal, unit):
        if goal is None:
            return "(for information)"
        return f">= {goal} %" if unit == "%" else f">= {goal}×"

    rate = lambda key: pages.get(key, {}).get("per_second")  # noqa: E731
    bare = rate("bare")
    ratio("/pricing signed out (kept template) vs bare Leptos", rate("pricing_kept"), bare, 150)
    ratio("/pricing signed out, rendered vs bare", rate("pricing_rendered"), bare, None)
    ratio("/pricing signed in (64 users, 4 plans) vs bare", rate("pricing_signed_in"), bare, 60)
    ratio("/dashboard/billing (subscribers) vs bare", rate("dashboard"), bare, 40)
    ratio("/dashboard/billing, rendered vs bare", rate("dashboard_rendered"), bare, None)
    ratio("/app (subscribers) vs bare", rate("app"), bare, 40)
    ratio("/app, rendered vs bare", rate("app_rendered"), bare, None)
    ratio("signed-in /pricing vs the Next.js 16 page", rate("pricing_signed_in"), rate("nextjs"), 40, "x")
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        base = by("write baseline", backend)
        base_rate = base and base["per_second"]
        ingest = by("webhook ingest", backend)
        ratio(f"webhook ingest vs write baseline, {name}", ingest and ingest["events_per_second"], base_rate, 60)
        usage = by("POST /api/v1/usage", backend)
        ratio(f"POST /api/v1/usage vs write baseline, {name}", usage and usage["per_second"], base_rate, 50)
        if usage:
            rows.append((f"POST /api/v1/usage p99, {name}", f"{usage['p99_ms']} ms", "<= 10 ms",
                         usage["p99_ms"] <= 10, usage["p99_ms"]))
    whole = by("server peak RSS, whole run")
    if whole:
        rows.append(("server peak RSS over the whole run", f"{whole['mb']} MB", "<= 64 MB",
                     whole["mb"] <= 64, whole["mb"]))
    payload = by("pricing payload")
    if payload:
        kb = payload["gzip_bytes"] / 1024
        rows.append(("/pricing payload, gzip", f"{kb:.1f} KB", "<= 120 KB", kb <= 120, kb))

    print("## summary (ratios of figures measured in this run)")
    print()
    print("| figure | measured | goal | met |")
    print("|---|---|---|---|")
    for label, shown, goal, met, _ in rows:
        mark = "—" if met is None else ("yes" if met else "**no**")
        print(f"| {label} | {shown} | {goal} | {mark} |")
    print()
    print("| page | req/s | p50 | p99 | peak RSS |")
    print("|---|---|---|---|---|")
    for page in pages.values():
        print(f"| {page['label']} | {page['per_second']:.0f} | {page['p50']} | {page['p99']} | "
              f"{page.get('peak_rss_mb', '—')} MB |")

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    report = {
        "commit": commit,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "seconds_per_load": int(os.environ.get("BENCH_SECONDS", "10")),
        "goals": [
            {"figure": label, "measured": shown, "goal": goal, "met": met, "value": value}
            for label, shown, goal, met, value in rows
        ],
        "pages": {k: dict(v, p50_ms=ms(v["p50"]), p99_ms=ms(v["p99"])) for k, v in pages.items()},
        "figures": figures,
    }
    os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    print()
    print(f"(JSON report: {report_path})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
