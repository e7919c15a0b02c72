"""The support page, the embeds and the public API beside a trivial endpoint, at two sizes.

    python bench/embed_bench.py [--small 1000] [--large 100000] [--history-months 6]
                                [--requests 1500] [--threads 8] [--reps 3]

For each size it makes a throw-away PostgreSQL database, migrates it and fills it with
``flask seed-demo --members N`` (members, subscriptions, payments, the report tables, and an
open poll whose ballots come from the patrons), then serves the app as in production with
``gunicorn -w 2 -k sync`` on 127.0.0.1. Interleaved with ``GET /bench/hello`` (the baseline,
measured again before each target), a bounded thread-pool client sends bursts of:

* ``GET /`` (the support page, with its funding goals);
* ``GET /embed/goals`` and ``GET /api/v1/goals``, full answers (200);
* the same with the ``If-None-Match`` of their current ETag (304);
* ``GET /embed/poll`` (the open poll with its turnout), full and 304.

Each burst's rate is divided by the hello burst just before it; the table shows each figure's
median ratio and p50/p99 latency at both sizes, the data size (patrons in the report tables,
ballots of the open poll) and the goals of issue 17: the support page at 0.6 of hello, full
answers at 0.8, 304s at 0.9, and each figure at the large size within 10 % of the small one.
Any error fails the run. Only 127.0.0.1 is contacted; every loop is bounded in count and
time; the databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (  # noqa: E402
    HELLO,
    Client,
    Request,
    gunicorn,
    percentile,
    throwaway_database,
)

SEED_TIMEOUT = 3600
DEADLINE_SECONDS = 1800  # for the bursts of one size
GOALS = {"support page": 0.6, "full": 0.8, "304": 0.9}
GROWTH_TOLERANCE = 0.10

#: Figure name -> (path, sends the current ETag, expected status, goal kind).
TARGETS: dict[str, tuple[str, bool, int, str]] = {
    "GET / (support page)": ("/", False, 200, "support page"),
    "goal embed": ("/embed/goals", False, 200, "full"),
    "GET /api/v1/goals": ("/api/v1/goals", False, 200, "full"),
    "goal embed, 304": ("/embed/goals", True, 304, "304"),
    "/api/v1/goals, 304": ("/api/v1/goals", True, 304, "304"),
    "poll embed": ("/embed/poll", False, 200, "full"),
    "poll embed, 304": ("/embed/poll", True, 304, "304"),
}


def flask(app_env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "supporters", *args],
        env={**os.environ, **app_env},
        capture_output=True,
        text=True,
        timeout=SEED_TIMEOUT,
        check=True,
    )
    return done.stdout


def data_size(app_env: dict[str, str]) -> dict[str, int]:
    """Patrons as the report tables count them, members, and the open poll's ballots."""
    script = """
import sqlalchemy as sa
from supporters import create_app
from supporters.extensions import db
from supporters.members.models import Member
from supporters.public import figures
from supporters.staff.queries import headline
from supporters.staff.models import SubscriptionMonth
with create_app().app_context():
    totals = headline.totals()
    poll = figures.open_poll(totals)
    members = db.session.scalar(sa.select(sa.func.count()).select_from(Member))
    rows = db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth))
    print(totals.patrons, members, poll["ballots"] if poll else 0, rows)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **app_env, "SUPPORTERS_BASE_URL": "http://127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    patrons, members, ballots, rows = (int(x) for x in done.stdout.split())
    return {"patrons": patrons, "members": members, "ballots": ballots, "rollup_rows": rows}


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Seed one size, then interleave hello and every target ``args.reps`` times."""
    with throwaway_database("supporters_embed_bench") as app_env:
        started = time.monotonic()
        print(f"seeding {size} members ...", flush=True)
        flask(
            app_env,
            "seed-demo",
            "--members",
            str(size),
            "--history-months",
            str(args.history_months),
        )
        seeded = time.monotonic() - started
        database = app_env["SUPPORTERS_DATABASE_URL"].rsplit("/", 1)[1]
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                database,
                "-q",
                "-c",
                "VACUUM ANALYZE",
            ],
            check=True,
        )
        sizes = data_size(app_env)
        print(f"seeded in {seeded:.0f} s: {sizes}", flush=True)
        deadline = time.monotonic() + DEADLINE_SECONDS
        results: dict[str, list[tuple[float, dict[str, Any]]]] = {name: [] for name in TARGETS}
        with gunicorn(app_env) as (port, server_pid):
            client = Client(port, args.threads)
            warm: list[Request] = [_get(path) for path, *_ in TARGETS.values()] * 20
            client.run(warm)
            for rep in range(1, args.reps + 1):
                for name, (path, conditional, expected, _kind) in TARGETS.items():
                    if time.monotonic() > deadline:
                        raise SystemExit("time limit reached")
                    headers: dict[str, str] = {}
                    if conditional:
                        etag = _etag(client, path)
                        headers["If-None-Match"] = etag
                    request: Request = ("GET", path, None, headers)
                    hello = client.run([HELLO] * args.requests, server_pid=server_pid)
                    target = client.run(
                        [request] * args.requests, expected=expected, server_pid=server_pid
                    )
                    if hello["errors"] or target["errors"]:
                        raise SystemExit(
                            f"{name}: {target['errors']} errors (hello {hello['errors']}): void run"
                        )
                    ratio = target["rate"] / hello["rate"]
                    target["cpu_ratio"] = hello["cpu_ms"] / max(target["cpu_ms"], 1e-6)
                    results[name].append((ratio, target))
                    print(
                        f"  {size} rep {rep} {name}: {target['rate']:.0f}/s, hello "
                        f"{hello['rate']:.0f}/s, ratio {ratio:.2f}, workers "
                        f"{target['cpu_ms']:.2f} ms/req (hello {hello['cpu_ms']:.2f})",
                        flush=True,
                    )
    return {"size": size, "seeded": seeded, "data": sizes, "results": results}


def _get(path: str, headers: dict[str, str] | None = None) -> Request:
    return ("GET", path, None, headers or {})


def _etag(client: Client, path: str) -> str:
    import http.client

    connection = http.client.HTTPConnection(client.host, client.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        etag = response.getheader("ETag")
    finally:
        connection.close()
    if not etag:
        raise SystemExit(f"{path} sent no ETag")
    return etag


def report(runs: list[dict[str, Any]]) -> bool:
    """Print the table of figures and goals; True when every goal is met."""
    print("\nUnder gunicorn -w 2 -k sync on PostgreSQL, ratio = target rate / hello rate just")
    print("before it (median of the repetitions); cpu = the workers' CPU time per hello request /")
    print("per target request (steadier on a shared machine); latencies p50/p99 in ms.\n")
    for run in runs:
        data = run["data"]
        print(
            f"size {run['size']}: {data['members']} members, {data['patrons']} patrons in the "
            f"report tables ({data['rollup_rows']} rollup rows), open poll with "
            f"{data['ballots']} ballots; seeded in {run['seeded']:.0f} s"
        )
    header = f"{'figure':<22}" + "".join(
        f"{'ratio @' + str(r['size']):>16}{'cpu':>6}{'p50/p99':>14}" for r in runs
    )
    print("\n" + header + f"{'goal':>8}{'growth':>9}  verdict")
    all_met = True
    for name, (_path, _conditional, _expected, kind) in TARGETS.items():
        goal = GOALS[kind]
        cells, medians = "", []
        for run in runs:
            ratios = [ratio for ratio, _ in run["results"][name]]
            latencies = [v for _, burst in run["results"][name] for v in burst["latencies"]]
            median = statistics.median(ratios)
            medians.append(median)
            cpu = statistics.median(burst["cpu_ratio"] for _, burst in run["results"][name])
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            cells += f"{median:>16.2f}{cpu:>6.2f}{p50:>7.1f}/{p99:<6.1f}"
        met = all(m >= goal for m in medians)
        growth = ""
        if len(medians) == 2:
            change = medians[1] / medians[0] - 1
            growth = f"{change:+.0%}"
            met = met and change >= -GROWTH_TOLERANCE
        all_met = all_met and met
        print(f"{name:<22}{cells}{goal:>8.1f}{growth:>9}  {'met' if met else 'NOT met'}")
    return all_met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="members at the small size")
    parser.add_argument(
        "--large", type=int, default=100_000, help="members at the large size (0: none)"
    )
    parser.add_argument("--history-months", type=int, default=6, help="history seed-demo invents")
    parser.add_argument("--requests", type=int, default=1500, help="requests per burst")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (3..10)")
    args = parser.parse_args()
    if not 3 <= args.reps <= 10 or not 100 <= args.requests <= 20_000:
        parser.error("--reps must be 3..10 and --requests 100..20000")
    if not 100 <= args.small <= 2_000_000 or not (
        args.large == 0 or args.small < args.large <= 2_000_000
    ):
        parser.error("--small must be 100..2000000 and --large above it (or 0)")
    runs = [measure(args.small, args)]
    if args.large:
        runs.append(measure(args.large, args))
    if not report(runs):
        print("\nSome goals are not met (see above).")


if __name__ == "__main__":
    main()
