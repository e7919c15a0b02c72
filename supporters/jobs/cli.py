"""``flask --app supporters worker [--once] [--concurrency N]`` and ``worker status``."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.pool import QueuePool

from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.queue import stats
from supporters.jobs.worker import Worker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@click.group("worker", cls=AppGroup, invoke_without_command=True)
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit (for cron).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Jobs run at a time, each in a thread with its own database connection (they mostly "
    "wait on Stripe or SMTP). The connection pool must allow one more than this.",
)
@with_appcontext
def worker_cli(once: bool, concurrency: int) -> None:
    """Run background jobs until SIGTERM or SIGINT, which finish the jobs in hand first."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    capacity = _pool_capacity()
    if capacity is not None and capacity < concurrency + 1:
        raise click.BadParameter(
            f"{concurrency} jobs at a time need {concurrency + 1} database connections; the "
            f"pool allows {capacity} (raise pool_size in SQLALCHEMY_ENGINE_OPTIONS)",
            param_hint="--concurrency",
        )
    _log_to_stderr()
    worker = Worker(app, concurrency=concurrency)

    def stop(signum: int, frame: FrameType | None) -> None:
        click.echo(
            f"{signal.Signals(signum).name}: finishing the jobs in hand, then exiting "
            "(send it again to stop at once; those jobs are then taken again after their lease).",
            err=True,
        )
        for each in STOP_SIGNALS:
            signal.signal(each, signal.SIG_DFL)
        worker.stop()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        worker.run(once=once)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@worker_cli.command("status")
@click.option(
    "--max-lag",
    type=click.FloatRange(min=0),
    help="Exit with status 1 when the oldest due job has waited longer (seconds): for monitoring.",
)
def status(max_lag: float | None) -> None:
    """Print the queue's depth, how long the oldest due job has waited, failed and dead jobs."""
    now = utcnow()
    figures = stats(now)
    lag = figures.lag(now).total_seconds()
    click.echo(f"due: {figures.due}")
    click.echo(f"lag_seconds: {lag:.0f}")
    click.echo(f"scheduled_later: {figures.later}")
    click.echo(f"running: {figures.running}")
    click.echo(f"failed: {figures.failed}")
    click.echo(f"dead: {figures.dead}")
    if max_lag is not None and lag > max_lag:
        raise click.ClickException(
            f"the oldest due job has waited {lag:.0f} s (more than {max_lag:g} s): "
            "are enough workers running?"
        )


def _pool_capacity() -> int | None:
    """How many connections the engine's pool hands out at once; None when unbounded."""
    pool = db.engine.pool
    if not isinstance(pool, QueuePool):
        return None
    # create_engine's default; the pool does not say its own.
    max_overflow = int(current_app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("max_overflow", 10))
    return None if max_overflow < 0 else pool.size() + max_overflow


def _log_to_stderr() -> None:
    """Show this package's progress on stderr, unless the operator configured logging."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.getLogger("supporters").setLevel(logging.INFO)
