"""Webhook ingest rate beside a trivial endpoint of the same app, under gunicorn on PostgreSQL.

    python bench/webhook_bench.py [--events 900] [--threads 8] [--reps 3]

It makes a throw-away PostgreSQL database, migrates it, starts the fake Stripe from the tests
on 127.0.0.1 and creates paid checkouts there (each yields ~7 events: checkout completed,
customer, subscription, invoice...), links their customers to members, and serves the app with
``gunicorn -w 2 -k sync``. Then, interleaved, it sends a burst of requests to ``/bench/hello``
(the baseline) and a burst of never-seen signed events to ``/stripe/webhook`` (each one is
verified, recorded once, and re-fetched from the fake Stripe, as in production). It prints each
ratio and their median against the goal: ingest keeps at least a quarter of the baseline rate.
Every loop is bounded in count and time; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.billing.fake_stripe import FakeStripe, event_payload, sign_payload  # noqa: E402

HOST = "127.0.0.1"
SECRET = "whsec_bench"
GOAL = 0.25
DEADLINE_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def psql(sql: str) -> None:
    subprocess.run(
        [
            "psql",
            "-h",
            HOST,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        check=True,
    )


class Client:
    """A bounded load generator for one URL path on 127.0.0.1."""

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.threads = threads

    def _one(self, request: tuple[str, str, bytes | None, dict[str, str]]) -> tuple[float, int]:
        method, path, body, headers = request
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        finally:
            connection.close()
        return time.perf_counter() - started, status

    def run(self, requests: list[tuple[str, str, bytes | None, dict[str, str]]]) -> dict[str, Any]:
        started = time.perf_counter()
        with ThreadPoolExecutor(self.threads) as pool:
            results = list(pool.map(self._one, requests))
        elapsed = time.perf_counter() - started
        latencies = sorted(r[0] for r in results)
        return {
            "rate": len(results) / elapsed,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "errors": sum(1 for _, status in results if status != 200),
        }


def serve_fake_stripe(conn: Connection, wanted: int) -> None:
    """Child process: the fake Stripe with paid checkouts; sends back events and customers.

    It runs apart from the load generator so that the two do not share one interpreter lock.
    """
    import stripe

    fake = FakeStripe(seed=1).start()
    client = stripe.StripeClient("sk_test_bench", base_addresses={"api": fake.api_base})
    product = client.v1.products.create(params={"name": "Bench support"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 500,
            "currency": "eur",
            "recurring": {"interval": "month"},
        }
    )
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
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "http://127.0.0.1/done",
            }
        )
        events.extend(fake.complete_checkout(session.id))
    conn.send((fake.api_base, customers, events[:wanted]))
    conn.recv()  # serve until the parent says stop
    fake.stop()


def link_customers(app_env: dict[str, str], customers: list[tuple[str, str]]) -> None:
    """Members for the fake's customers, as a real join would have left them."""
    os.environ.update(app_env)
    from supporters import create_app
    from supporters.billing.models import Customer
    from supporters.extensions import db
    from supporters.members.models import Member

    app = create_app()
    with app.app_context():
        for email, customer_id in customers:
            member = Member(email=email, display_name=email.split("@")[0])
            db.session.add(member)
            db.session.flush()
            db.session.add(Customer(member_id=member.id, stripe_customer_id=customer_id))
        db.session.commit()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=900, help="unique events in all (bounded)")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (>= 3)")
    args = parser.parse_args()
    if not 3 <= args.reps <= 10 or not 30 <= args.events <= 20_000:
        parser.error("--reps must be 3..10 and --events 30..20000")

    database = f"supporters_bench_{os.getpid()}"
    psql(f"CREATE DATABASE {database}")
    parent_end, child_end = multiprocessing.get_context("fork").Pipe()
    fake = multiprocessing.get_context("fork").Process(
        target=serve_fake_stripe, args=(child_end, args.events), daemon=True
    )
    fake.start()
    if not parent_end.poll(DEADLINE_SECONDS):
        raise SystemExit("the fake Stripe did not start")
    api_base, customers, events = parent_end.recv()
    port = free_port()
    env = {
        **os.environ,
        "SUPPORTERS_DATABASE_URL": f"postgresql://postgres@{HOST}:5432/{database}",
        "SUPPORTERS_SECRET_KEY": secrets.token_urlsafe(48),
        "SUPPORTERS_STRIPE_SECRET_KEY": "sk_test_bench",
        "SUPPORTERS_STRIPE_API_BASE": api_base,
        "SUPPORTERS_STRIPE_WEBHOOK_SECRET": SECRET,
        "SUPPORTERS_BENCH_ROUTES": "true",
        "SUPPORTERS_INSTANCE_PATH": f"/tmp/{database}",
    }
    server = None
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        flask = [sys.executable, "-m", "flask", "--app", "supporters"]
        subprocess.run([*flask, "db", "upgrade"], env=env, check=True, capture_output=True)
        app_env = {k: v for k, v in env.items() if k.startswith("SUPPORTERS_")}
        link_customers(app_env, customers)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-k",
                "sync",
                "-b",
                f"{HOST}:{port}",
                "--log-level",
                "warning",
                "supporters:create_app()",
            ],
            env=env,
        )
        client = Client(port, args.threads)
        for _ in range(100):
            if client._one(("GET", "/bench/hello", None, {}))[1] == 200:
                break
            time.sleep(0.1)

        batches = [events[i :: args.reps] for i in range(args.reps)]
        rows = []
        for rep, batch in enumerate(batches, 1):
            if time.monotonic() > deadline:
                raise SystemExit("time limit reached")
            hello = [("GET", "/bench/hello", None, {})] * len(batch)
            baseline = client.run(hello)
            signed = []
            for event in batch:
                body = event_payload(event)
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign_payload(body, SECRET),
                }
                signed.append(("POST", "/stripe/webhook", body, headers))
            ingest = client.run(signed)
            duplicate = client.run(signed)  # Stripe's retries of the same events
            rows.append((rep, len(batch), baseline, ingest, duplicate))

        print(
            f"\nWebhook ingest under gunicorn -w 2 on PostgreSQL ({len(events)} unique events, "
            f"{args.threads} client threads)\n"
        )
        print(
            f"{'rep':>3} {'events':>6} {'hello/s':>9} {'ingest/s':>9} {'ratio':>6} {'dup/s':>8} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
        )
        ratios = []
        errors = 0
        for rep, size, baseline, ingest, duplicate in rows:
            ratio = ingest["rate"] / baseline["rate"]
            ratios.append(ratio)
            errors += baseline["errors"] + ingest["errors"] + duplicate["errors"]
            print(
                f"{rep:>3} {size:>6} {baseline['rate']:>9.1f} {ingest['rate']:>9.1f} {ratio:>6.2f} "
                f"{duplicate['rate']:>8.1f} {ingest['p50']:>7.1f} {ingest['p99']:>7.1f} "
                f"{baseline['errors'] + ingest['errors'] + duplicate['errors']:>6}"
            )
        median = statistics.median(ratios)
        verdict = "met" if median >= GOAL and errors == 0 else "not met"
        print(f"\nmedian ingest/baseline ratio {median:.2f}; goal >= {GOAL:.2f}: {verdict}")
        if errors:
            raise SystemExit(f"{errors} request(s) failed: the run does not count")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        parent_end.send("stop")
        fake.join(timeout=10)
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
