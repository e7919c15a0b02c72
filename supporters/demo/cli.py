"""``flask --app supporters seed-demo``: the command, and all that the app loads of the demo.

The seeder is imported when the command runs, not when the app is built: ``create_app``
registers this module's command, and a running site never loads the rest of the package.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from supporters.extensions import db

DEFAULT_MEMBERS = 150
DEFAULT_SEED = 1848
DEFAULT_HISTORY_MONTHS = 18


@click.command("seed-demo")
@click.option(
    "--members",
    type=click.IntRange(min=0),
    default=DEFAULT_MEMBERS,
    show_default=True,
    help="How many readers to invent (staff accounts come on top).",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="Random seed: the same seed gives the same demo (relative to today).",
)
@click.option(
    "--history-months",
    type=click.IntRange(min=2, max=120),
    default=DEFAULT_HISTORY_MONTHS,
    show_default=True,
    help="How far back members start joining (a longer history means more payments each).",
)
@with_appcontext
def seed_demo(members: int, seed: int, history_months: int) -> None:
    """Fill an empty database with tiers, members, subscriptions, payments and polls."""
    from supporters.demo import seeder
    from supporters.demo.members import ADMIN_EMAIL as admin

    try:
        summary = seeder.seed(members=members, seed=seed, history_months=history_months)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    config = current_app.config
    click.echo(f"Demo data written (seed {seed}):")
    for line in summary:
        click.echo(line)
    sign_in = f"{config['BASE_URL']}/sign-in"
    if config["SMTP_HOST"]:
        click.echo(
            f"Sign in as {admin} at {sign_in}: example.org receives no mail, so run "
            f"`flask --app supporters create-staff {admin} --role admin` for a one-time "
            "sign-in link."
        )
    else:
        click.echo(
            f"Sign in as {admin} at {sign_in}: the sign-in code is printed in the console "
            "running the app (no SMTP server is configured)."
        )
