"""Staff reports at two sizes: report queries, pages under gunicorn, and CSV export memory.

    python bench/report_bench.py [--members 10000] [--large 100000] [--renders 30]
                                 [--history-months 32]

For each size it makes a throw-away PostgreSQL database, migrates it, fills it with
``flask seed-demo --members N --history-months 32`` (about ten payments per member; bulk
inserts, then the rollups are rebuilt in the same transaction) and times ``flask staff
rebuild-rollups`` on its own. Then:

* every report query in this process (median and 95th percentile of ``--repeats`` calls);
* under ``gunicorn -w 2 -k sync``, interleaved with the baseline ``/bench/hello``: the
  overview, the reports page, the members list's first page and a page 90% of the way down
  (reached by its keyset link), a search, the same search's deep page (median and p95 of
  ``--renders`` renders each);
* the members CSV export (every member) and the payments CSV (every payment) through a
  one-worker gunicorn: rows, time, and the worker's peak RSS (VmHWM) before and after.

It prints one table with the database size beside the figures, and the goals met or not. The
issue's target is a million members and ten million payments (``--large 1000000``: seeding
takes about 40 minutes on a 2-core machine); each figure is compared between the two sizes, which is what shows whether
cost grows with history. Only 127.0.0.1 is contacted; every loop is bounded; databases are
dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (  # noqa: E402
    HELLO,
    HOST,
    Client,
    gunicorn,
    peak_rss_kib,
    percentile,
    throwaway_database,
)

SEED_TIMEOUT = 4 * 3600
OVERVIEW_P50_MS, OVERVIEW_P95_MS = 150, 300
GROWTH = 2.0  # no figure may cost more than twice as much at the larger size
EXPORT_TIMEOUT = 3600  # seconds a single CSV download may take


@contextlib.contextmanager
def environment(app_env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in app_env}
    os.environ.update(app_env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def flask(app_env: dict[str, str], *args: str) -> float:
    """Run a flask command of the app; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "supporters", *args],
        env={**os.environ, **app_env},
        check=True,
        capture_output=True,
        timeout=SEED_TIMEOUT,
    )
    return time.perf_counter() - started


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median and 95th percentile of ``repeats`` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, percentile(times, 0.95)


def facts_and_queries(app_env: dict[str, str], repeats: int) -> dict[str, Any]:
    """Database size and row counts; every report query timed in-process; a staff cookie."""
    import sqlalchemy as sa

    from supporters import create_app
    from supporters.billing.models import Payment
    from supporters.extensions import db
    from supporters.members import services as member_services
    from supporters.members.models import Member
    from supporters.staff import member_list
    from supporters.staff.models import Movement
    from supporters.staff.queries import at_risk, headline, monthly, retention

    with environment(app_env):
        app = create_app()
    result: dict[str, Any] = {}
    with app.app_context():
        scalar = db.session.scalar
        result["db_bytes"] = scalar(sa.text("SELECT pg_database_size(current_database())"))
        result["members"] = scalar(sa.select(sa.func.count()).select_from(Member))
        result["payments"] = scalar(sa.select(sa.func.count()).select_from(Payment))
        result["movements"] = scalar(sa.select(sa.func.count()).select_from(Movement))
        admin = db.session.scalars(
            sa.select(Member).where(Member.email == "admin@example.org")
        ).one()
        row = member_services.start_session(admin, user_agent="report_bench")
        db.session.commit()
        result["cookie"] = app.session_interface.get_signing_serializer(app).dumps(  # type: ignore[attr-defined]
            {"_user_id": row.id, "_fresh": True}
        )
        # A keyset link 90% of the way down the list, found once (not timed).
        newest = member_list.MemberFilter()
        deep = db.session.scalars(
            sa.select(Member).order_by(*newest.order).offset(int(result["members"] * 0.9)).limit(1)
        ).one()
        result["deep_cursor"] = member_list.encode_cursor(newest.key(deep))
        search = member_list.MemberFilter(q="anna")
        matches = int(
            scalar(sa.select(sa.func.count()).select_from(Member).where(*search.conditions())) or 0
        )
        deep_match = db.session.scalars(
            sa.select(Member)
            .where(*search.conditions())
            .order_by(*search.order)
            .offset(max(0, int(matches * 0.9)))
            .limit(1)
        ).first()
        result["search_cursor"] = (
            member_list.encode_cursor(search.key(deep_match)) if deep_match else ""
        )
        result["search_matches"] = matches

        figures = headline.now_figures()
        months = monthly.last_months(12)
        checks: dict[str, Callable[[], Any]] = {
            "now_figures (patrons, MRR, 30 days ago, tiers)": headline.now_figures,
            "patron_months (12)": lambda: monthly.patron_months(months),
            "revenue_months (12, movements, received)": lambda: monthly.revenue_months(months),
            "failure_months (12)": lambda: at_risk.failure_months(months),
            "cohorts (18)": lambda: retention.cohorts(monthly.last_months(18)),
            "lifetime_values": lambda: retention.lifetime_values(figures),
            "goal_progress": lambda: headline.goal_progress(figures),
            "past_due_count": at_risk.past_due_count,
            "current_poll_turnout": lambda: headline.current_poll_turnout(figures),
            "at_risk (200 of each)": at_risk.at_risk,
            "members list, first page": lambda: member_list.page(newest),
            "members list, page at 90%": lambda: member_list.page(
                newest, after=result["deep_cursor"]
            ),
            "search 'anna', first page": lambda: member_list.page(search),
            "search by exact address": lambda: member_list.page(
                member_list.MemberFilter(q=deep.email)
            ),
        }
        timings = {}
        for name, call in checks.items():
            call()  # warm the plan cache and the buffers
            timings[name] = timed(call, repeats)
            db.session.rollback()
        result["queries"] = timings
        db.engine.dispose()
    return result


def pages(port: int, cookie: str, facts: dict[str, Any], renders: int) -> dict[str, Any]:
    """Each page rendered ``renders`` times, interleaved with the baseline."""
    headers = {"Cookie": f"session={cookie}"}
    paths = {
        "GET /staff/ (overview)": "/staff/",
        "GET /staff/reports": "/staff/reports",
        "GET /staff/members (first page)": "/staff/members",
        "GET /staff/members (page at 90%)": f"/staff/members?after={facts['deep_cursor']}",
        "GET /staff/members?q=anna": "/staff/members?q=anna",
    }
    if facts["search_cursor"]:
        paths["GET /staff/members?q=anna (at 90%)"] = (
            f"/staff/members?q=anna&after={facts['search_cursor']}"
        )
    client = Client(port, 1)
    for path in paths.values():  # warm up each worker
        for _ in range(2):
            latency, status = client.one(("GET", path, None, headers))
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
    latencies: dict[str, list[float]] = {name: [] for name in ["hello", *paths]}
    errors = 0
    for _ in range(renders):
        latency, status = client.one(HELLO)
        latencies["hello"].append(latency)
        errors += status != 200
        for name, path in paths.items():
            latency, status = client.one(("GET", path, None, headers))
            latencies[name].append(latency)
            errors += status != 200
    return {
        "latencies": {
            name: (statistics.median(values) * 1000, percentile(values, 0.95))
            for name, values in latencies.items()
        },
        "errors": errors,
    }


def export(app_env: dict[str, str], cookie: str, path: str) -> dict[str, Any]:
    """One CSV download through a fresh one-worker gunicorn: rows, seconds, peak RSS."""
    import http.client

    headers = {"Cookie": f"session={cookie}"}
    with gunicorn(app_env, workers=1, timeout=EXPORT_TIMEOUT) as (port, server_pid):
        client = Client(port, 1)
        for warm in ("/staff/members", "/staff/reports/patrons.csv"):
            client.one(("GET", warm, None, headers))
        before = peak_rss_kib(server_pid)
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, port, timeout=EXPORT_TIMEOUT)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        lines = 0
        while chunk := response.read(1 << 16):
            lines += chunk.count(b"\n")
        connection.close()
        seconds = time.perf_counter() - started
        after = peak_rss_kib(server_pid)
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}")
    return {"rows": lines - 1, "seconds": seconds, "before": before, "after": after}


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    print(f"--- {size:,} members", flush=True)
    with throwaway_database("supporters_report_bench") as app_env:
        seed = flask(
            app_env,
            "seed-demo",
            "--members",
            str(size),
            "--history-months",
            str(args.history_months),
        )
        print(f"seeded in {seed:.0f} s", flush=True)
        rebuild = flask(app_env, "staff", "rebuild-rollups")
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", "VACUUM ANALYZE"],
            env={**os.environ, "PGDATABASE": app_env["SUPPORTERS_DATABASE_URL"].rsplit("/", 1)[1]},
            check=True,
        )
        facts = facts_and_queries(app_env, args.repeats)
        with gunicorn(app_env) as (port, _):
            http_figures = pages(port, facts["cookie"], facts, args.renders)
        members_csv = export(app_env, facts["cookie"], "/staff/members.csv")
        payments_csv = export(
            app_env, facts["cookie"], "/staff/payments.csv?date_from=2000-01-01&date_to=2100-01-01"
        )
    return {
        **facts,
        "size": size,
        "seed": seed,
        "rebuild": rebuild,
        "http": http_figures,
        "members_csv": members_csv,
        "payments_csv": payments_csv,
    }


def report(small: dict[str, Any], large: dict[str, Any] | None) -> None:
    runs = [small] + ([large] if large else [])
    width = 46

    def row(label: str, values: list[str], goal: str = "") -> None:
        print(f"{label:<{width}}" + "".join(f"{v:>24}" for v in values) + f"  {goal}")

    print("\nStaff reports on PostgreSQL. Queries: in-process, p50/p95 ms. Pages: gunicorn -w 2")
    print("-k sync, one client on 127.0.0.1, p50/p95 ms, interleaved with /bench/hello.\n")
    row("", [f"{r['size']:,} members" for r in runs] + (["large/small"] if large else []))
    row("database size", [f"{r['db_bytes'] / 2**20:,.0f} MiB" for r in runs])
    row("payments / ledger rows", [f"{r['payments']:,} / {r['movements']:,}" for r in runs])
    row("seed-demo incl. rollup rebuild (s)", [f"{r['seed']:.0f}" for r in runs])
    row("staff rebuild-rollups alone (s)", [f"{r['rebuild']:.1f}" for r in runs])
    verdicts: list[tuple[str, bool]] = []

    def pair(values: list[tuple[float, float]]) -> list[str]:
        cells = [f"{p50:.1f} / {p95:.1f}" for p50, p95 in values]
        if len(values) == 2:
            cells.append(f"{values[1][0] / max(values[0][0], 0.001):.2f}x")
        return cells

    print()
    for name in small["queries"]:
        values = [r["queries"][name] for r in runs]
        ratio_ok = len(values) < 2 or values[1][0] <= GROWTH * max(values[0][0], 1.0)
        row(name, pair(values), f"<= {GROWTH:.0f}x: {'met' if ratio_ok else 'not met'}")
        verdicts.append((name, ratio_ok))
    print()
    for name in small["http"]["latencies"]:
        values = [r["http"]["latencies"][name] for r in runs]
        goal = ""
        if name.startswith("GET /staff/ "):
            p50, p95 = values[-1]
            absolute = p50 < OVERVIEW_P50_MS and p95 < OVERVIEW_P95_MS
            growth = len(values) < 2 or values[1][0] <= GROWTH * values[0][0]
            goal = (
                f"p50<{OVERVIEW_P50_MS} p95<{OVERVIEW_P95_MS}: {'met' if absolute else 'not met'};"
                f" <= {GROWTH:.0f}x: {'met' if growth else 'not met'}"
            )
            verdicts += [("overview absolute", absolute), ("overview growth", growth)]
        elif "at 90%" in name:
            first = name.replace("(page at 90%)", "(first page)").replace(" (at 90%)", "")
            ok = all(
                r["http"]["latencies"][name][0] <= GROWTH * r["http"]["latencies"][first][0]
                for r in runs
            )
            goal = f"<= {GROWTH:.0f}x its first page: {'met' if ok else 'not met'}"
            verdicts.append((name, ok))
        row(name, pair(values), goal)
    print()
    for key, label in (("members_csv", "members CSV"), ("payments_csv", "payments CSV")):
        row(f"{label}: rows", [f"{r[key]['rows']:,}" for r in runs])
        row(f"{label}: seconds", [f"{r[key]['seconds']:.1f}" for r in runs])
        peaks = [(r[key]["before"], r[key]["after"]) for r in runs]
        row(
            f"{label}: worker VmHWM before -> after",
            [f"{b / 1024:.0f} -> {a / 1024:.0f} MiB" for b, a in peaks],
        )
        if large:
            growth = [a - b for b, a in peaks]
            ok = growth[1] <= max(2 * growth[0], 8 * 1024)
            row(
                f"{label}: peak growth during the export",
                [f"{g / 1024:.1f} MiB" for g in growth],
                f"not with rows (<= 2x or <= 8 MiB): {'met' if ok else 'not met'}",
            )
            verdicts.append((label, ok))
    errors = sum(r["http"]["errors"] for r in runs)
    print(f"\nHTTP errors: {errors}")
    failed = [name for name, ok in verdicts if not ok]
    print("goals: all met" if not failed else f"goals not met: {', '.join(failed)}")
    if errors:
        raise SystemExit("requests failed: the run does not count")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="the smaller size")
    parser.add_argument("--large", type=int, default=100_000, help="the larger size (0: skip)")
    parser.add_argument("--renders", type=int, default=30, help="renders of each page")
    parser.add_argument("--repeats", type=int, default=30, help="calls of each query")
    parser.add_argument(
        "--history-months",
        type=int,
        default=32,
        help="months of history seed-demo invents at both sizes (32: about ten payments each)",
    )
    args = parser.parse_args()
    if not 100 <= args.members <= 2_000_000 or not (args.large == 0 or args.large > args.members):
        parser.error("--members must be 100..2000000 and --large above it (or 0)")
    if not 5 <= args.renders <= 500 or not 5 <= args.repeats <= 500:
        parser.error("--renders and --repeats must be 5..500")
    small = measure(args.members, args)
    large = measure(args.large, args) if args.large else None
    report(small, large)


if __name__ == "__main__":
    main()
