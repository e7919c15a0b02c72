"""Ballots per second beside a trivial endpoint of the same app, under gunicorn on PostgreSQL.

    python bench/vote_bench.py [--members 600] [--threads 8] [--reps 3]

It makes a throw-away PostgreSQL database, migrates it (``flask db upgrade``), and seeds it
directly with bulk INSERTs: ``--members`` patrons on two tiers with active subscriptions, and
one open poll with four topics (up to two choices, weighted by the square root of the amount,
so each ballot computes a weight). The app is served as in production by
``gunicorn -w 2 -k sync`` on 127.0.0.1.

Signing in is not what is measured, so it is done in-process, honestly: for every member a
real session row is written, and the app's own code (Flask-Login's ``login_user`` and
Flask-WTF's ``generate_csrf`` inside a request context of the same app and secret key) makes
the session cookie and the CSRF token a browser would hold after signing in by email.

Then, interleaved, a bounded thread-pool client sends a burst of ``GET /bench/hello`` (the
baseline), a burst of ``POST /bench/signed-in`` (a second baseline: a signed-in form post whose
view does nothing, so the cookie, the CSRF token and the session's member are checked, as for a
vote) and a burst of ``POST /polls/<id>/vote``, one request per member with a CSRF token and a
cookie, each vote answered 303 when the ballot is stored. The first vote burst inserts every
ballot; later ones change them (same path: upsert the ballot, replace its choices). It prints
each burst's rate, the ratios and their medians, the CPU time per request of the workers and of
PostgreSQL, p50/p99 latencies, errors (any error fails the run), the workers' peak memory, and
the goal: the vote path keeps at least a third of the baseline rate. Afterwards it checks that
the database holds exactly one ballot per member, and drops the database. Only 127.0.0.1 is ever
contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (  # noqa: E402
    HELLO,
    HOST,
    Client,
    Request,
    gunicorn,
    peak_rss_kib,
    percentile,
    throwaway_database,
)

GOAL = 1 / 3
DEADLINE_SECONDS = 600
USER_AGENT = "vote-bench/1"


def seed(app_env: dict[str, str], members: int) -> tuple[int, list[int], list[tuple[str, str]]]:
    """Patrons, a poll and signed-in sessions; returns (poll id, option ids, [(cookie, token)])."""
    os.environ.update(app_env)
    import sqlalchemy as sa
    from flask import g, session
    from flask_login import login_user
    from flask_wtf.csrf import generate_csrf

    from supporters import create_app
    from supporters.billing.models import Interval, Subscription, SubscriptionStatus, Tier
    from supporters.db import utcnow
    from supporters.extensions import db
    from supporters.members.auth import SessionUser
    from supporters.members.models import Member, MemberSession, Role
    from supporters.voting.models import Poll, PollOption, PollState, Topic, TopicStatus, Weighting

    app = create_app()
    now = utcnow()
    rng = random.Random(1848)
    with app.app_context():
        tiers = [
            Tier(
                slug="reader", name="Reader", monthly_amount=500, yearly_amount=5000, currency="EUR"
            ),
            Tier(
                slug="insider",
                name="Insider",
                monthly_amount=1500,
                yearly_amount=15000,
                currency="EUR",
            ),
        ]
        db.session.add_all(tiers)
        db.session.flush()
        member_ids = db.session.scalars(
            sa.insert(Member).returning(Member.id, sort_by_parameter_order=True),
            [
                {
                    "email": f"patron{i}@example.org",
                    "display_name": f"Patron {i}",
                    "role": Role.MEMBER,
                    "email_verified_at": now,
                    "session_version": 1,
                    "created_at": now,
                }
                for i in range(members)
            ],
        ).all()
        subscriptions = []
        for member_id in member_ids:
            tier = rng.choice(tiers)
            subscriptions.append(
                {
                    "member_id": member_id,
                    "tier_id": tier.id,
                    "interval": Interval.MONTH,
                    "amount": tier.monthly_amount,
                    "currency": "EUR",
                    "status": SubscriptionStatus.ACTIVE,
                    "started_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        db.session.execute(sa.insert(Subscription), subscriptions)
        topics = [
            Topic(title=title, pitch="", status=TopicStatus.SHORTLISTED)
            for title in ("Schools", "Housing", "Transport", "Water")
        ]
        poll = Poll(
            question="What should we investigate next?",
            state=PollState.OPEN,
            opens_at=now,
            closes_at=now.replace(year=now.year + 1),
            max_choices=2,
            weighting=Weighting.SQRT_AMOUNT,
            options=[PollOption(topic=topic, position=i) for i, topic in enumerate(topics)],
        )
        db.session.add(poll)
        db.session.flush()
        poll_id, option_ids = poll.id, [option.id for option in poll.options]
        session_ids = [secrets.token_urlsafe(32) for _ in member_ids]
        db.session.execute(
            sa.insert(MemberSession),
            [
                {
                    "id": sid,
                    "member_id": mid,
                    "session_version": 1,
                    "user_agent": USER_AGENT,
                    "created_at": now,
                }
                for sid, mid in zip(session_ids, member_ids, strict=True)
            ],
        )
        db.session.commit()

        members_by_id = {m.id: m for m in db.session.scalars(sa.select(Member))}
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        assert serializer is not None
        credentials = []
        for sid, mid in zip(session_ids, member_ids, strict=True):
            with app.test_request_context(
                "/", environ_base={"REMOTE_ADDR": HOST}, headers={"User-Agent": USER_AGENT}
            ):
                session.permanent = True
                login_user(SessionUser(members_by_id[mid], sid, None))
                g.pop("csrf_token", None)  # cached per app context, and this one is shared
                token = generate_csrf()
                credentials.append((serializer.dumps(dict(session)), token))
        db.engine.dispose()
    return poll_id, option_ids, credentials


def count_ballots(app_env: dict[str, str], poll_id: int) -> tuple[int, int]:
    """(ballots, distinct members) stored for the poll."""
    import sqlalchemy as sa

    from supporters import create_app
    from supporters.extensions import db
    from supporters.voting.models import Vote

    os.environ.update(app_env)
    with create_app().app_context():
        row = db.session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(Vote.member_id))).where(
                Vote.poll_id == poll_id
            )
        ).one()
        db.engine.dispose()
        return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=600, help="patrons, one vote each a burst")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (>= 3)")
    args = parser.parse_args()
    if not 3 <= args.reps <= 10 or not 50 <= args.members <= 50_000 or not 1 <= args.threads <= 64:
        parser.error("--reps must be 3..10, --members 50..50000 and --threads 1..64")

    deadline = time.monotonic() + DEADLINE_SECONDS
    with throwaway_database("supporters_vote_bench") as app_env:
        poll_id, option_ids, credentials = seed(app_env, args.members)
        with gunicorn(app_env) as (port, server_pid):
            client = Client(port, args.threads)
            rows = burst(client, server_pid, args, poll_id, option_ids, credentials, deadline)
            peak = peak_rss_kib(server_pid)
        ballots, voters = count_ballots(app_env, poll_id)
    report(args, rows, ballots, voters, peak)


Burst = dict[str, Any]


def burst(
    client: Client,
    server_pid: int,
    args: argparse.Namespace,
    poll_id: int,
    option_ids: list[int],
    credentials: list[tuple[str, str]],
    deadline: float,
) -> list[tuple[int, Burst, Burst, Burst]]:
    """Interleave the two baselines and a vote burst, ``args.reps`` times."""
    rng = random.Random(7)
    rows = []
    for rep in range(1, args.reps + 1):
        if time.monotonic() > deadline:
            raise SystemExit("time limit reached")
        baseline = client.run([HELLO] * args.members, expected=200, server_pid=server_pid)
        signed_in = [
            _post("/bench/signed-in", cookie, [("csrf_token", token)])
            for cookie, token in credentials
        ]
        signed_in_burst = client.run(signed_in, expected=200, server_pid=server_pid)
        votes = []
        for cookie, token in credentials:
            chosen = rng.sample(option_ids, rng.choice((1, 2)))
            fields = [("csrf_token", token)] + [("option", str(i)) for i in chosen]
            votes.append(_post(f"/polls/{poll_id}/vote", cookie, fields))
        vote_burst = client.run(votes, expected=303, server_pid=server_pid)
        rows.append((rep, baseline, signed_in_burst, vote_burst))
    return rows


def _post(path: str, cookie: str, fields: list[tuple[str, str]]) -> Request:
    """A form post from the browser that holds ``cookie``."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"session={cookie}",
        "User-Agent": USER_AGENT,
    }
    return ("POST", path, urlencode(fields).encode(), headers)


def report(
    args: argparse.Namespace,
    rows: list[tuple[int, Burst, Burst, Burst]],
    ballots: int,
    voters: int,
    peak: int,
) -> None:
    """Print the table, the median ratios and the goal; exit non-zero when the run is void."""
    print(
        f"\nVotes under gunicorn -w 2 -k sync on PostgreSQL: {args.members} patrons, one "
        f"ballot each per burst (burst 1 casts, later bursts change), {args.threads} client "
        "threads. Rates in requests per second; CPU in ms per request, of the workers and of "
        "PostgreSQL.\n"
    )
    print(
        f"{'rep':>3} {'hello':>7} {'signed-in':>9} {'vote':>6} {'vote/hello':>10} "
        f"{'vote/signed-in':>14} {'workers hello/signed-in/vote':>28} {'db signed-in/vote':>17} "
        f"{'errors':>6}"
    )
    ratios, signed_in_ratios, cpu_ratios, errors = [], [], [], 0
    for rep, hello, signed_in, vote in rows:
        ratios.append(vote["rate"] / hello["rate"])
        signed_in_ratios.append(vote["rate"] / signed_in["rate"])
        cpu_ratios.append(hello["cpu_ms"] / vote["cpu_ms"] if vote["cpu_ms"] else 0.0)
        burst_errors = hello["errors"] + signed_in["errors"] + vote["errors"]
        errors += burst_errors
        workers = f"{hello['cpu_ms']:.2f}/{signed_in['cpu_ms']:.2f}/{vote['cpu_ms']:.2f}"
        database = f"{signed_in['db_cpu_ms']:.2f}/{vote['db_cpu_ms']:.2f}"
        print(
            f"{rep:>3} {hello['rate']:>7.0f} {signed_in['rate']:>9.0f} {vote['rate']:>6.0f} "
            f"{ratios[-1]:>10.2f} {signed_in_ratios[-1]:>14.2f} {workers:>28} {database:>17} "
            f"{burst_errors:>6}"
        )
    print()
    bursts = {
        "hello": [hello for _, hello, _, _ in rows],
        "signed-in": [signed_in for _, _, signed_in, _ in rows],
        "vote": [vote for _, _, _, vote in rows],
    }
    for label, of_kind in bursts.items():
        latencies = [latency for one in of_kind for latency in one["latencies"]]
        print(
            f"{label} latency p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p99 {percentile(latencies, 0.99):.1f} ms over {len(latencies)} requests"
        )
    median = statistics.median(ratios)
    consistent = ballots == voters == args.members
    verdict = "met" if median >= GOAL and errors == 0 and consistent else "not met"
    print(
        f"errors {errors}; ballots stored {ballots} for {voters} members (want {args.members}); "
        f"worker peak RSS {peak / 1024:.0f} MiB"
    )
    print(
        f"workers' CPU per request, hello/vote (steadier than rates on a shared machine): "
        f"median {statistics.median(cpu_ratios):.2f}"
    )
    print(
        "median votes/signed-in ratio (a signed-in form post that does nothing: what the vote "
        f"itself adds): {statistics.median(signed_in_ratios):.2f}"
    )
    print(
        f"median votes/baseline ratio {median:.2f}; goal: the vote path keeps at least a "
        f"third of the baseline rate (>= {GOAL:.2f}): {verdict}"
    )
    if errors:
        raise SystemExit(f"{errors} request(s) failed: the run does not count")
    if not consistent:
        raise SystemExit("the database does not hold exactly one ballot per member")


if __name__ == "__main__":
    main()
