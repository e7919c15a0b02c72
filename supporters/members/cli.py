"""Account commands: ``flask --app supporters create-staff EMAIL --role staff|admin``."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from supporters.extensions import db
from supporters.members import emails, services
from supporters.members.models import Role


@click.command("create-staff")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([Role.STAFF.value, Role.ADMIN.value]),
    default=Role.STAFF.value,
    show_default=True,
    help="staff read reports and members; admins also manage tiers, polls and staff.",
)
@click.option("--name", "display_name", default="", help="Display name for a new account.")
@with_appcontext
def create_staff(email: str, role: str, display_name: str) -> None:
    """Create or promote a staff account and print a one-time sign-in link."""
    try:
        member, is_new = services.ensure_member(email, display_name=display_name)
    except services.InvalidEmail as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from exc
    changed = services.set_role(member, Role(role), actor_id=None)
    link = emails.sign_in_link(services.issue_sign_in(member).token)
    db.session.commit()
    if is_new:
        click.echo(f"Created {member.email} as {role}.")
    elif changed:
        click.echo(f"{member.email} is now {role}.")
    else:
        click.echo(f"{member.email} was already {role}.")
    click.echo(f"Sign in within 15 minutes, once, with:\n  {link}")


members_cli = AppGroup("members", help="Member accounts.")


@members_cli.command("prune")
def prune() -> None:
    """Delete expired sign-in requests and ended sessions (the workers do it daily)."""
    requests, sessions = services.prune()
    db.session.commit()
    click.echo(f"Deleted {requests} expired sign-in request(s) and {sessions} ended session(s).")
