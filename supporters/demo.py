"""``flask --app supporters seed-demo``: believable demo data for a first look."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Fill an empty database with tiers, members, subscriptions, payments and polls."""
    raise click.ClickException("not written yet")
