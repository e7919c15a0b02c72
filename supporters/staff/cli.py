"""``flask --app supporters staff …``: maintenance of the report rollups."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from supporters.extensions import db
from supporters.staff.rebuild import rebuild

staff_cli = AppGroup("staff", help="Staff reports.")


@staff_cli.command("rebuild-rollups")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=2_000,
    show_default=True,
    help="Members whose subscriptions are checked per batch.",
)
def rebuild_rollups(chunk: int) -> None:
    """Catch the ledger up with every subscription and recompute every report rollup.

    Safe to run at any time; run it after bulk imports. On PostgreSQL the report tables are
    locked until it commits, so payments recorded meanwhile wait a moment.
    """
    started = time.monotonic()
    try:
        report = rebuild(chunk=chunk)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    click.echo(
        f"Checked {report.subscriptions_checked:,} subscriptions in "
        f"{time.monotonic() - started:.1f} s: {report.backfilled:,} recorded for the first time, "
        f"{report.corrected:,} corrected, {report.ended:,} ended (row gone); "
        f"{report.movements_added:,} movements added. Rollups recomputed."
    )
    if report.corrected or report.ended:
        click.echo(
            "Corrections mean a subscription changed without the listeners seeing it "
            "(a bulk or hand-made change): the corrections are dated now."
        )
