"""``flask --app supporters import patreon FILE``: bring Patreon's members export in."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from supporters import audit
from supporters.extensions import db
from supporters.patreon import export as patreon_export
from supporters.patreon import services
from supporters.patreon.models import TierMapping

import_cli = AppGroup("import", help="Bring members in from other platforms.")


def read_file(path: Path) -> patreon_export.Export:
    """Read and check an export file (a UTF-8 byte-order mark is skipped).

    :raises patreon_export.ExportError: bad lines, or a file that is not UTF-8 text.
    """
    currency = current_app.config["CURRENCY"]
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return patreon_export.read_export(stream, currency)
    except UnicodeDecodeError:
        raise patreon_export.ExportError(
            [patreon_export.BadLine(1, "the file is not UTF-8 text (export it again as CSV)")]
        ) from None


@import_cli.command("patreon")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print what would change, and change nothing.")
@click.option("--yes", is_flag=True, help="Apply without asking for confirmation.")
def import_patreon(file: Path, dry_run: bool, yes: bool) -> None:
    """Import Patreon's members export: members, their Patreon history, and a grant for each
    paid-up patron until their paid period ends. Patreon tiers map to tiers here as last
    confirmed, or as suggested by amount for tiers seen for the first time."""
    try:
        export = read_file(file)
    except patreon_export.ExportError as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        raise click.ClickException("Nothing was imported: fix these lines and try again.") from None
    mapping = services.proposed_mapping(export)
    confirmed = set(
        db.session.scalars(
            sa.select(TierMapping.patreon_tier).where(TierMapping.patreon_tier.in_(list(mapping)))
        )
    )
    tiers = {t.id: t.name for t in services.local_tiers()}
    for name, people in services.tier_names(export):
        target = mapping.get(name)
        how = "confirmed" if name in confirmed else "suggested by amount"
        local = tiers.get(target, "no tier") if target is not None else "no tier"
        click.echo(f"Patreon tier {name or '(none)'!r} ({people}) -> {local} ({how})")

    def run() -> services.ImportCounts:
        try:
            return services.import_export(export, mapping, audit.SYSTEM)
        except services.PatreonImportError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None

    counts = run()
    db.session.rollback()  # first, only count: nothing is held while the prompt waits
    for label, value in counts.lines():
        click.echo(f"{label}: {value}")
    if dry_run:
        click.echo("Dry run: nothing was written.")
        return
    if not counts.changes:
        click.echo("Nothing to change: the export is already imported.")
        return
    if not yes and not click.confirm("Apply these changes?"):
        click.echo("Nothing was written.")
        return
    run()
    db.session.commit()
    click.echo("Imported.")
