"""What a closed poll's turnout costs when it is counted from the membership history.

    python bench/poll_bench.py [--members 10000 50000] [--repeats 15]

For each size it makes a throw-away PostgreSQL database, migrates it and fills it with
``flask seed-demo --members N --history-months 32``. The demo's closed poll is then made a
poll the clock closed (published, past its closing time, no stored count), and in this process
it times, side by side: the count of who could vote now (what an open poll's results show) and
at the closing time (what the clock-closed poll's results show), then the poll's page as a
visitor sees it with the count made from the history and with a count stored by staff
closing it early (median and 95th percentile of ``--repeats`` each). Only 127.0.0.1 is
contacted; databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import throwaway_database  # noqa: E402

SEED_TIMEOUT = 3600


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median and 95th percentile of ``repeats`` calls, in milliseconds, after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def measure(size: int, repeats: int) -> None:
    with throwaway_database("supporters_poll_bench") as app_env:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "supporters", "seed-demo"]
            + ["--members", str(size), "--history-months", "32"],
            env={**os.environ, **app_env},
            check=True,
            capture_output=True,
            timeout=SEED_TIMEOUT,
        )
        seeded = time.perf_counter() - started
        os.environ.update(app_env)

        import sqlalchemy as sa

        from supporters import create_app
        from supporters.billing.models import Subscription
        from supporters.extensions import db
        from supporters.voting import clock, results
        from supporters.voting.models import Poll, PollState

        app = create_app({"TESTING": True})
        with app.app_context():
            subscriptions = db.session.scalar(sa.select(sa.func.count()).select_from(Subscription))
            closed = db.session.scalars(sa.select(Poll).where(Poll.state == PollState.CLOSED)).one()
            closes_at = closed.closes_at
            assert closes_at is not None
            poll_id = closed.id
            db.session.execute(
                sa.update(Poll)
                .where(Poll.id == poll_id)
                .values(state=PollState.OPEN, closed_at=None, eligible_count=None)
            )
            db.session.commit()
            visitor = app.test_client()
            figures = {
                "count now (an open poll)": timed(
                    lambda: results.count_eligible(closed, clock.now()), repeats
                ),
                "count at the closing, from history": timed(
                    lambda: results.count_eligible(closed, closes_at), repeats
                ),
                "page, closed by the clock": timed(
                    lambda: visitor.get(f"/polls/{poll_id}"), repeats
                ),
            }
            db.session.execute(
                sa.update(Poll)
                .where(Poll.id == poll_id)
                .values(state=PollState.CLOSED, closed_at=closes_at, eligible_count=size // 2)
            )
            db.session.commit()
            figures["page, count stored at closing"] = timed(
                lambda: visitor.get(f"/polls/{poll_id}"), repeats
            )
            db.session.remove()
            db.engine.dispose()
        print(f"{size} members, {subscriptions} subscriptions (seeded in {seeded:.0f} s)")
        for name, (median, p95) in figures.items():
            print(f"  {name:38s} median {median:7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    for size in args.members:
        measure(size, args.repeats)


if __name__ == "__main__":
    main()
