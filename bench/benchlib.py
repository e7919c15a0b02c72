"""What every benchmark shares: a throw-away database, the app under gunicorn, a bounded client.

Only 127.0.0.1 is ever contacted; every loop is bounded in count and in time. See
../shared/BENCHMARKS.md for why figures are ratios measured side by side in one run.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BURST_SECONDS = 120  # no single burst may take longer than this

Request = tuple[str, str, bytes | None, dict[str, str]]
HELLO: Request = ("GET", "/bench/hello", None, {})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
        + ["-c", sql],
        check=True,
    )


@contextlib.contextmanager
def throwaway_database(prefix: str, root: Path = ROOT) -> Iterator[dict[str, str]]:
    """A new PostgreSQL database, migrated; yields the app's environment; dropped afterwards.

    ``root`` is the checkout whose code migrates it (another commit's, for a comparison).
    """
    database = f"{prefix}_{os.getpid()}"
    psql(f"CREATE DATABASE {database}")
    app_env = {
        "SUPPORTERS_DATABASE_URL": f"postgresql://postgres@{HOST}:5432/{database}",
        "SUPPORTERS_SECRET_KEY": os.urandom(32).hex(),
        "SUPPORTERS_BENCH_ROUTES": "true",
        "SUPPORTERS_RATELIMIT_STORAGE_URL": "memory://",
        "SUPPORTERS_INSTANCE_PATH": f"/tmp/{database}",
    }
    try:
        flask = [sys.executable, "-m", "flask", "--app", "supporters"]
        subprocess.run(
            [*flask, "db", "upgrade"],
            env={**os.environ, **app_env},
            cwd=root,
            check=True,
            capture_output=True,
        )
        yield app_env
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


class Client:
    """A bounded load generator for the app on 127.0.0.1 (and nowhere else)."""

    def __init__(self, port: int, threads: int, host: str = HOST) -> None:
        if host != HOST:
            raise SystemExit(f"refusing to load {host}: this client only talks to {HOST}")
        self.host, self.port, self.threads = host, port, threads

    def one(self, request: Request) -> tuple[float, int]:
        method, path, body, headers = request
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
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

    def run(
        self, requests: list[Request], expected: int = 200, server_pid: int | None = None
    ) -> dict[str, Any]:
        """Send every request (bounded by count, and by BURST_SECONDS in time).

        With ``server_pid``, also the CPU time its workers spent, per request ("cpu_ms"): a
        steadier figure than a rate on a shared machine, since it does not count waiting. The
        CPU time PostgreSQL's processes spent, per request, is "db_cpu_ms": on these machines
        the database shares the client's and the workers' two cores.
        """
        deadline = time.monotonic() + BURST_SECONDS
        cpu_before = workers_cpu_seconds(server_pid) if server_pid else 0.0
        database_before = database_cpu_seconds()

        def bounded(request: Request) -> tuple[float, int]:
            if time.monotonic() > deadline:
                return 0.0, -1  # skipped: counts as an error
            return self.one(request)

        started = time.perf_counter()
        with ThreadPoolExecutor(self.threads) as pool:
            results = list(pool.map(bounded, requests))
        elapsed = time.perf_counter() - started
        cpu = workers_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
        database = database_cpu_seconds() - database_before
        return {
            "cpu_ms": cpu * 1000 / max(len(results), 1),
            "db_cpu_ms": database * 1000 / max(len(results), 1),
            "count": len(results),
            "rate": len(results) / elapsed,
            "latencies": sorted(r[0] for r in results),
            "errors": sum(1 for _, status in results if status != expected),
        }


def percentile(values: list[float], fraction: float) -> float:
    """The value (in milliseconds) below which ``fraction`` of the seconds in ``values`` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


@contextlib.contextmanager
def gunicorn(
    app_env: dict[str, str], workers: int = 2, timeout: int = 30, root: Path = ROOT
) -> Iterator[tuple[int, int]]:
    """The app (``root``'s code) served as in production; yields (port, server pid) once it
    answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"{HOST}:{port}"]
        + ["--timeout", str(timeout), "--log-level", "warning", "supporters:create_app()"],
        env={**os.environ, **app_env},
        cwd=root,
    )
    try:
        probe = Client(port, 1)
        for _ in range(100):
            if probe.one(HELLO)[1] == 200:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not answer on /bench/hello")
        yield port, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _workers(parent_pid: int) -> Iterator[Path]:
    """The /proc entries of a server's worker processes."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name (which may hold spaces): state, ppid, ...
        if stat[stat.rindex(")") + 2 :].split()[1] == str(parent_pid):
            yield entry


def _cpu_seconds(stat: str) -> float:
    """User and system CPU time from the text of a /proc/PID/stat file."""
    # The fields after the command name (which may hold spaces): state, ppid, ...
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def database_cpu_seconds() -> float:
    """CPU time used so far by the local PostgreSQL server's processes (0 if none is seen)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += _cpu_seconds((entry / "stat").read_text())
        except OSError:
            continue
    return total


def workers_cpu_seconds(parent_pid: int) -> float:
    """User and system CPU time the server's workers have used so far."""
    total = 0.0
    for entry in _workers(parent_pid):
        try:
            total += _cpu_seconds((entry / "stat").read_text())
        except OSError:
            continue
    return total


def peak_rss_kib(parent_pid: int) -> int:
    """The largest peak RSS (VmHWM) among a server's worker processes."""
    peak = 0
    for entry in _workers(parent_pid):
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmHWM" in fields:
            peak = max(peak, int(fields["VmHWM"].split()[0]))
    return peak


def fake_stripe_selling(seed: int, name: str) -> tuple[Any, Any, str, str]:
    """The tests' fake Stripe, started, with a product and its €5 monthly price: (the fake, an
    SDK client of it, the product's id, the price's id). For the child process of a bench."""
    import stripe

    from tests.billing.fake_stripe import FakeStripe

    fake = FakeStripe(seed=seed).start()
    client = stripe.StripeClient("sk_test_bench", base_addresses={"api": fake.api_base})
    product = client.v1.products.create(params={"name": name})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 500,
            "currency": "eur",
            "recurring": {"interval": "month"},
        }
    )
    return fake, client, product.id, price.id
