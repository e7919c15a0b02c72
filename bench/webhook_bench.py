"""Webhook ingest rate beside a trivial endpoint of the same app, under gunicorn on PostgreSQL.

    python bench/webhook_bench.py [--events 1500] [--threads 8] [--reps 5]

It makes a throw-away PostgreSQL database, migrates it, starts the fake Stripe from the tests
on 127.0.0.1 and creates paid checkouts there (each yields ~7 events: checkout completed,
customer, subscription, invoice...), links their customers to members and the product to a tier
(the app acts only on its own customers and products), and serves the app with
``gunicorn -w 2 -k sync``. Then, interleaved, it sends a burst of requests to ``/bench/hello``
(the baseline) and a burst of never-seen signed events to ``/stripe/webhook`` (each one is
verified, recorded once, and re-fetched from the fake Stripe, as in production). It prints each
ratio and their median against the goal: ingest keeps at least a quarter of the baseline rate.
Every loop is bounded in count and time; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import (  # noqa: E402
    HELLO,
    Client,
    Request,
    fake_stripe_selling,
    gunicorn,
    percentile,
    throwaway_database,
)
from tests.billing.fake_stripe import event_payload, sign_payload  # noqa: E402

SECRET = "whsec_bench"
GOAL = 0.25
DEADLINE_SECONDS = 600


def serve_fake_stripe(conn: Connection, wanted: int) -> None:
    """Child process: the fake Stripe with paid checkouts; sends back events, customers, and
    the product and price they pay for.

    It runs apart from the load generator so that the two do not share one interpreter lock.
    """
    fake, client, product_id, price_id = fake_stripe_selling(1, "Bench support")
    events: list[dict[str, Any]] = []
    customers: list[tuple[str, str]] = []
    while len(events) < wanted:
        email = f"bench{len(customers) + 1}@example.org"
        customer = client.v1.customers.create(params={"email": email})
        customers.append((email, customer.id))
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price_id, "quantity": 1}],
                "success_url": "http://127.0.0.1/done",
            }
        )
        events.extend(fake.complete_checkout(session.id))
    conn.send((fake.api_base, customers, events[:wanted], (product_id, price_id)))
    conn.recv()  # serve until the parent says stop
    fake.stop()


def link_customers(
    app_env: dict[str, str], customers: list[tuple[str, str]], product: tuple[str, str]
) -> None:
    """Members for the fake's customers, and a tier for its product and price, as a real join
    and ``billing sync-stripe`` would have left them."""
    os.environ.update(app_env)
    from supporters import create_app
    from supporters.billing.models import Customer, Tier
    from supporters.extensions import db
    from supporters.members.models import Member

    app = create_app()
    with app.app_context():
        product_id, price_id = product
        db.session.add(
            Tier(
                slug="bench",
                name="Bench support",
                monthly_amount=500,
                yearly_amount=5000,
                currency="EUR",
                stripe_product_id=product_id,
                stripe_monthly_price_id=price_id,
            )
        )
        for email, customer_id in customers:
            member = Member(email=email, display_name=email.split("@")[0])
            db.session.add(member)
            db.session.flush()
            db.session.add(Customer(member_id=member.id, stripe_customer_id=customer_id))
        db.session.commit()
        db.engine.dispose()


def signed(events: list[dict[str, Any]]) -> list[Request]:
    requests: list[Request] = []
    for event in events:
        body = event_payload(event)
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, SECRET),
        }
        requests.append(("POST", "/stripe/webhook", body, headers))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1500, help="unique events in all (bounded)")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (>= 3)")
    args = parser.parse_args()
    if not 3 <= args.reps <= 10 or not 30 <= args.events <= 20_000 or not 1 <= args.threads <= 64:
        parser.error("--reps must be 3..10, --events 30..20000 and --threads 1..64")

    deadline = time.monotonic() + DEADLINE_SECONDS
    fork = multiprocessing.get_context("fork")
    parent_end, child_end = fork.Pipe()
    fake = fork.Process(target=serve_fake_stripe, args=(child_end, args.events), daemon=True)
    fake.start()
    try:
        if not parent_end.poll(DEADLINE_SECONDS):
            raise SystemExit("the fake Stripe did not start")
        api_base, customers, events, product = parent_end.recv()
        with throwaway_database("supporters_webhook_bench") as app_env:
            app_env.update(
                SUPPORTERS_STRIPE_SECRET_KEY="sk_test_bench",
                SUPPORTERS_STRIPE_API_BASE=api_base,
                SUPPORTERS_STRIPE_WEBHOOK_SECRET=SECRET,
            )
            link_customers(app_env, customers, product)
            with gunicorn(app_env) as (port, server_pid):
                client = Client(port, args.threads)
                rows = []
                # Contiguous slices: each holds whole checkouts, so every burst has the same mix
                # of event types (a stride would give each burst only some of the types).
                size = len(events)
                batches = [
                    events[size * i // args.reps : size * (i + 1) // args.reps]
                    for i in range(args.reps)
                ]
                for rep, batch in enumerate(batches, 1):
                    if time.monotonic() > deadline:
                        raise SystemExit("time limit reached")
                    baseline = client.run([HELLO] * len(batch), server_pid=server_pid)
                    requests = signed(batch)
                    ingest = client.run(requests, server_pid=server_pid)
                    duplicate = client.run(requests)  # Stripe's retries of the same events
                    rows.append((rep, len(batch), baseline, ingest, duplicate))
    finally:
        parent_end.send("stop")
        fake.join(timeout=10)
    report(args, len(events), rows)


def report(args: argparse.Namespace, total: int, rows: list[tuple[Any, ...]]) -> None:
    """Print the table, the median ratio and the goal; exit non-zero when the run is void."""
    print(
        f"\nWebhook ingest under gunicorn -w 2 on PostgreSQL ({total} unique events, "
        f"{args.threads} client threads)\n"
    )
    print(
        f"{'rep':>3} {'events':>6} {'hello/s':>9} {'ingest/s':>9} {'ratio':>6} {'dup/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'cpu hello/event ms':>19} {'db cpu/event ms':>15} "
        f"{'errors':>6}"
    )
    ratios = []
    cpu_ratios = []
    errors = 0
    for rep, size, baseline, ingest, duplicate in rows:
        ratio = ingest["rate"] / baseline["rate"]
        ratios.append(ratio)
        cpu_ratios.append(baseline["cpu_ms"] / ingest["cpu_ms"] if ingest["cpu_ms"] else 0.0)
        burst_errors = baseline["errors"] + ingest["errors"] + duplicate["errors"]
        errors += burst_errors
        cpu = f"{baseline['cpu_ms']:.2f}/{ingest['cpu_ms']:.2f}"
        print(
            f"{rep:>3} {size:>6} {baseline['rate']:>9.1f} {ingest['rate']:>9.1f} {ratio:>6.2f} "
            f"{duplicate['rate']:>8.1f} {percentile(ingest['latencies'], 0.5):>7.1f} "
            f"{percentile(ingest['latencies'], 0.99):>7.1f} {cpu:>19} "
            f"{ingest['db_cpu_ms']:>15.2f} {burst_errors:>6}"
        )
    median = statistics.median(ratios)
    verdict = "met" if median >= GOAL and errors == 0 else "not met"
    print(
        f"\nworkers' CPU per request, hello/event (steadier than rates on a shared machine): "
        f"median {statistics.median(cpu_ratios):.2f}"
    )
    print(f"median ingest/baseline ratio {median:.2f}; goal >= {GOAL:.2f}: {verdict}")
    if errors:
        raise SystemExit(f"{errors} request(s) failed: the run does not count")


if __name__ == "__main__":
    main()
