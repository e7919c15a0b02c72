"""The renewal storm: every patron renews at once while each call to Stripe takes 250 ms.

    python bench/storm_bench.py [--patrons 2000] [--latency 0.25] [--senders 16]
                                [--baseline PATH]

It starts the fake Stripe from the tests on 127.0.0.1 with N paying patrons, makes a throw-away
PostgreSQL database, gives the app a member and a customer for each (and a tier for the product)
and lets ``billing reconcile`` record their subscriptions, as their joining would have. The app
runs under ``gunicorn -w 2 -k sync``, its workers as the README runs them (``flask --app
supporters worker``, each a process). Then, while Stripe answers every call after
``--latency`` seconds:

1. quiet: a reader loads the support page (``/``) alone, for its p95;
2. three storms, with 1, 2 and 4 worker processes: every patron's subscription renews in the
   fake, and the events of each renewal (``customer.subscription.updated``, ``invoice.created``,
   ``invoice.finalized``, ``invoice.paid``, ``invoice.payment_succeeded``, ``charge.succeeded``,
   ``payment_intent.succeeded``) are posted, signed, by ``--senders`` concurrent senders as fast
   as the app takes them, while the reader keeps loading the support page. It measures each
   webhook's response time, the reader's, and the time from the first post until every event
   is processed; then checks that each renewal made exactly one paid payment.

``--baseline PATH`` runs one more storm against the checkout at PATH (a worktree of an older
commit, e.g. ``git worktree add /tmp/before-jobs acaabdf^1``), which processes each event
inside its request: there the time to process is the time to deliver.

It prints one table and the goals: webhook p99 under 50 ms; the support page's p95 during the
storm at most twice its quiet p95; 4 workers at least 3 times as fast as 1. Every loop is
bounded in count and time; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.benchlib import (  # noqa: E402
    ROOT,
    Client,
    fake_stripe_selling,
    gunicorn,
    percentile,
    throwaway_database,
)
from tests.billing.fake_stripe import event_payload, sign_payload  # noqa: E402

SECRET = "whsec_storm"
RENEWAL_EVENTS = (
    "customer.subscription.updated",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "charge.succeeded",
    "payment_intent.succeeded",
)
WORKER_COUNTS = (1, 2, 4)
DEADLINE_SECONDS = 1800  # the whole run
STORM_SECONDS = 600  # one storm, until every event is processed
QUIET_REQUESTS = 200
GOAL_WEBHOOK_P99_MS = 50.0
GOAL_PAGE_RATIO = 2.0
GOAL_SPEEDUP = 3.0

# Run in the checkout under test (its own code, whatever its commit): members, customers and a
# tier for the fake's patrons, as their joining would have left them.
SEED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import supporters
assert supporters.__file__.startswith(sys.argv[1]), supporters.__file__
from supporters import create_app
from supporters.billing.models import Customer, Tier
from supporters.extensions import db
from supporters.members.models import Member

customers, (product_id, price_id) = json.load(open(sys.argv[2]))
app = create_app()
with app.app_context():
    db.session.add(Tier(slug="storm", name="Storm support", monthly_amount=500,
                        yearly_amount=5000, currency="EUR", stripe_product_id=product_id,
                        stripe_monthly_price_id=price_id))
    for email, customer_id in customers:
        member = Member(email=email, display_name=email.split("@")[0])
        db.session.add(member)
        db.session.flush()
        db.session.add(Customer(member_id=member.id, stripe_customer_id=customer_id))
    db.session.commit()
"""


def serve_fake_stripe(conn: Connection, patrons: int) -> None:
    """Child process: the fake Stripe with ``patrons`` paying patrons; then renews them all on
    request and sends back each renewal's events. Apart from the senders, so that the two do
    not share one interpreter lock."""
    fake, client, product_id, price_id = fake_stripe_selling(14, "Storm support")
    customers: list[tuple[str, str]] = []
    subscriptions: list[str] = []
    for number in range(1, patrons + 1):
        email = f"patron{number}@example.org"
        customer = client.v1.customers.create(params={"email": email})
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price_id, "quantity": 1}],
                "success_url": "http://127.0.0.1/done",
            }
        )
        fake.complete_checkout(session.id)
        customers.append((email, customer.id))
        subscriptions.append(fake.get(session.id)["subscription"])
    conn.send((fake.api_base, customers, (product_id, price_id)))
    while True:
        command, value = conn.recv()
        if command == "stop":
            break
        if command == "latency":
            fake.latency = float(value)
            conn.send("ok")
        elif command == "renew":
            renewals = []
            for subscription_id in subscriptions:
                events = fake.renew(subscription_id)
                renewals.append([event_payload(e) for e in events if e["type"] in RENEWAL_EVENTS])
            conn.send(renewals)
    fake.stop()


class FakeStripeProcess:
    """Commands to the fake Stripe's process."""

    def __init__(self, patrons: int) -> None:
        fork = multiprocessing.get_context("fork")
        self.conn, child_end = fork.Pipe()
        self.process = fork.Process(target=serve_fake_stripe, args=(child_end, patrons))
        self.process.daemon = True
        self.process.start()
        if not self.conn.poll(DEADLINE_SECONDS):
            raise SystemExit("the fake Stripe did not start")
        self.api_base, self.customers, self.product = self.conn.recv()

    def latency(self, seconds: float) -> None:
        self.conn.send(("latency", seconds))
        self.conn.recv()

    def renew_all(self) -> list[list[bytes]]:
        self.conn.send(("renew", None))
        renewals: list[list[bytes]] = self.conn.recv()
        return renewals

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.process.join(timeout=10)


def seed(root: Path, app_env: dict[str, str], fake: FakeStripeProcess, scratch: Path) -> None:
    """Members and customers for the fake's patrons, then ``billing reconcile`` records their
    subscriptions and first payments (with the fake answering at once)."""
    import json

    data = scratch / "customers.json"
    data.write_text(json.dumps([fake.customers, fake.product]))
    env = {**os.environ, **app_env}
    subprocess.run(
        [sys.executable, "-c", SEED, str(root), str(data)], env=env, cwd=root, check=True
    )
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "supporters", "billing", "reconcile"],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
    )
    # The welcome messages of joining are not part of the storm.
    with psycopg.connect(app_env["SUPPORTERS_DATABASE_URL"], autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('jobs')").fetchone() != (None,):
            connection.execute("UPDATE jobs SET state = 'done', finished_at = now()")


@contextlib.contextmanager
def workers(root: Path, app_env: dict[str, str], count: int, log: Path) -> Iterator[None]:
    """``count`` worker processes, as the README runs them (niced), started (their imports done) before
    the storm begins; stopped with SIGTERM after. Their log goes to ``log``."""
    processes = []
    with log.open("ab") as output:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    # Niced, as the README's unit runs them: readers before background work.
                    ["nice", "-n", "10", sys.executable, "-m", "flask", "--app", "supporters"]
                    + ["worker"],
                    env={**os.environ, **app_env},
                    cwd=root,
                    stdout=subprocess.DEVNULL,  # the development mail "transport" prints
                    stderr=output,
                )
            )
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("job(s) at a time") < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the workers did not start; see {log}")
            time.sleep(0.1)
        time.sleep(1)  # let their first periodic runs pass
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class Reader(threading.Thread):
    """One reader loading the support page, again and again, until stopped (or 10,000 times)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = Client(port, 1)
        self.latencies: list[float] = []
        self.errors = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        for _ in range(10_000):
            if self.stopping.is_set():
                return
            elapsed, status = self.client.one(("GET", "/", None, {}))
            self.latencies.append(elapsed)
            self.errors += status != 200

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def quiet_p95(port: int) -> float:
    client = Client(port, 1)
    latencies = []
    for _ in range(QUIET_REQUESTS):
        elapsed, status = client.one(("GET", "/", None, {}))
        if status != 200:
            raise SystemExit(f"the support page answered {status}")
        latencies.append(elapsed)
    return percentile(latencies, 0.95)


def storm(
    port: int, database_url: str, renewals: list[list[bytes]], senders: int
) -> dict[str, Any]:
    """Post every renewal's events with ``senders`` at once while a reader loads the support
    page; wait until every event is processed; check the payments."""
    client = Client(port, 1)
    bodies = [body for events in renewals for body in events]

    def send(body: bytes) -> tuple[float, int]:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(body, SECRET),
        }
        return client.one(("POST", "/stripe/webhook", body, headers))

    reader = Reader(port)
    reader.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        posted = list(pool.map(send, bodies))
    delivered = time.perf_counter() - started
    ids = [_event_id(body) for body in bodies]
    deadline = time.monotonic() + STORM_SECONDS
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            (pending,) = connection.execute(
                "SELECT count(*) FROM stripe_events WHERE processed_at IS NULL"
            ).fetchone() or (0,)
            if not pending:
                break
            if time.monotonic() > deadline:
                reader.stop()
                raise SystemExit(f"{pending} event(s) still unprocessed after {STORM_SECONDS} s")
            time.sleep(0.1)
        processed = time.perf_counter() - started
        reader.stop()
        (recorded,) = connection.execute(
            "SELECT count(*) FROM stripe_events WHERE stripe_event_id = ANY(%s)", (ids,)
        ).fetchone() or (0,)
        invoices = [_paid_invoice(events) for events in renewals]
        paid: dict[str, int] = dict(
            connection.execute(
                "SELECT stripe_invoice_id, count(*) FROM payments"
                " WHERE status = 'paid' AND stripe_invoice_id = ANY(%s) GROUP BY 1",
                (invoices,),
            ).fetchall()
        )
    return {
        "events": len(bodies),
        "webhook": sorted(elapsed for elapsed, _ in posted),
        "webhook_errors": sum(status != 200 for _, status in posted) + len(ids) - recorded,
        "page": reader.latencies,
        "page_errors": reader.errors,
        "delivered": delivered,
        "processed": processed,
        "one_payment_each": sum(paid.get(invoice) == 1 for invoice in invoices),
        "renewals": len(renewals),
    }


def _event_id(body: bytes) -> str:
    import json

    return str(json.loads(body)["id"])


def _paid_invoice(events: list[bytes]) -> str:
    import json

    for body in events:
        event = json.loads(body)
        if event["type"] == "invoice.paid":
            return str(event["data"]["object"]["id"])
    raise SystemExit("a renewal without invoice.paid")


def run_tree(
    root: Path,
    label: str,
    args: argparse.Namespace,
    fake: FakeStripeProcess,
    counts: tuple[int, ...],
) -> list[tuple[str, int, dict[str, Any], float]]:
    """The quiet page and one storm per worker count (none: the tree has no workers)."""
    rows = []
    with throwaway_database("supporters_storm_bench", root) as app_env:
        app_env.update(
            SUPPORTERS_STRIPE_SECRET_KEY="sk_test_storm",
            SUPPORTERS_STRIPE_API_BASE=fake.api_base,
            SUPPORTERS_STRIPE_WEBHOOK_SECRET=SECRET,
            SUPPORTERS_DEVELOPMENT_WORKER="false",
        )
        scratch = Path(app_env["SUPPORTERS_INSTANCE_PATH"])
        scratch.mkdir(parents=True, exist_ok=True)
        fake.latency(0)
        seed(root, app_env, fake, scratch)
        fake.latency(args.latency)
        with gunicorn(app_env, root=root) as (port, _):
            quiet = quiet_p95(port)
            for count in counts:
                renewals = fake.renew_all()  # the fake's own work: no HTTP, no latency
                log = scratch / f"workers-{count}.log"
                log.write_bytes(b"")
                with workers(root, app_env, count, log):
                    result = storm(port, app_env["SUPPORTERS_DATABASE_URL"], renewals, args.senders)
                rows.append((label, count, result, quiet))
                print(f"  {label}, {count} worker process(es): {result['processed']:.1f} s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patrons", type=int, default=2000, help="patrons renewing at once")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per Stripe call")
    parser.add_argument("--senders", type=int, default=16, help="concurrent webhook senders")
    parser.add_argument("--baseline", type=Path, help="a checkout of an older commit to compare")
    args = parser.parse_args()
    if not 10 <= args.patrons <= 5000 or not 0 <= args.latency <= 2 or not 1 <= args.senders <= 64:
        parser.error("--patrons must be 10..5000, --latency 0..2 s and --senders 1..64")
    if args.baseline and not (args.baseline / "supporters" / "__init__.py").is_file():
        parser.error(f"{args.baseline} is not a checkout of supporters")

    started = time.monotonic()
    print(f"Starting the fake Stripe with {args.patrons} patrons…")
    fake = FakeStripeProcess(args.patrons)
    try:
        rows = run_tree(ROOT, "this commit", args, fake, WORKER_COUNTS)
        if args.baseline:
            rows += run_tree(args.baseline.resolve(), "baseline", args, fake, (0,))
    finally:
        fake.stop()
    report(args, rows, time.monotonic() - started)


def report(
    args: argparse.Namespace, rows: list[tuple[str, int, dict[str, Any], float]], took: float
) -> None:
    """Print the table and the goals; exit non-zero when the run is void."""
    print(
        f"\nRenewal storm: {args.patrons} patrons renew at once, Stripe answers after "
        f"{args.latency * 1000:.0f} ms, {args.senders} senders, gunicorn -w 2 on PostgreSQL "
        f"(run took {took:.0f} s)\n"
    )
    print(
        f"{'code':<12} {'workers':>7} {'events':>6} {'hook p50':>8} {'hook p99':>8} "
        f"{'page p95':>8} {'quiet':>6} {'ratio':>6} {'delivered s':>11} {'processed s':>11} "
        f"{'after s':>7} "
        f"{'1 paid each':>11} {'errors':>6}"
    )
    errors = 0
    for label, count, result, quiet in rows:
        page_p95 = percentile(result["page"], 0.95) if result["page"] else 0.0
        failed = result["webhook_errors"] + result["page_errors"]
        failed += result["renewals"] - result["one_payment_each"]
        errors += failed
        print(
            f"{label:<12} {count if count else '-':>7} {result['events']:>6} "
            f"{percentile(result['webhook'], 0.5):>8.1f} {percentile(result['webhook'], 0.99):>8.1f} "
            f"{page_p95:>8.1f} {quiet:>6.1f} {page_p95 / quiet:>6.2f} {result['delivered']:>11.1f} "
            f"{result['processed']:>11.1f} {result['processed'] - result['delivered']:>7.1f} "
            f"{result['one_payment_each']:>5}/{result['renewals']:<5} {failed:>6}"
        )
    ours = {count: result for label, count, result, _ in rows if label == "this commit"}
    quiet = rows[0][3]
    worst_p99 = max(percentile(r["webhook"], 0.99) for r in ours.values())
    worst_ratio = max(percentile(r["page"], 0.95) / quiet for r in ours.values() if r["page"])
    speedup = ours[1]["processed"] / ours[4]["processed"]
    print(
        "\nhook: a webhook's response time, ms; page: the support page's p95 during the storm,"
        " ms, beside its quiet p95 and their ratio; delivered: seconds until the senders were"
        " done; processed: until every event was processed (from the first post); after: the"
        " part of it after the last post; 1 paid each: renewals with exactly one paid payment."
    )
    _goal(
        f"webhook p99 (worst storm) {worst_p99:.1f} ms",
        worst_p99 < GOAL_WEBHOOK_P99_MS,
        f"< {GOAL_WEBHOOK_P99_MS:.0f} ms",
    )
    _goal(
        f"support page p95 storm/quiet (worst) {worst_ratio:.2f}",
        worst_ratio <= GOAL_PAGE_RATIO,
        f"<= {GOAL_PAGE_RATIO:.0f}",
    )
    _goal(
        f"4 workers against 1: {speedup:.2f} times as fast",
        speedup >= GOAL_SPEEDUP,
        f">= {GOAL_SPEEDUP:.0f}",
    )
    if errors:
        raise SystemExit(
            f"{errors} error(s) (failed requests or renewals without exactly one paid payment): the run does not count"
        )


def _goal(figure: str, met: bool, goal: str) -> None:
    print(f"{figure}; goal {goal}: {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
