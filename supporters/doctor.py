"""``flask --app supporters doctor``: the settings as production would check them, and whether
the base URL leads readers to this app."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from supporters import config as settings

PROBE_TIMEOUT = 5  # seconds


@click.command("doctor")
@click.option(
    "--host",
    help="The host readers use, as in their address bar (news.example): must be the base URL's.",
)
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Ask <base URL>/healthz whether this app answers there.",
)
@with_appcontext
def doctor(host: str | None, probe: bool) -> None:
    """Check the settings as a production start-up would, and where the base URL leads."""
    config = current_app.config
    click.echo(f"Settings checked as production checks them (SUPPORTERS_ENV={config['ENV']}).")
    problems = settings.problems_with(config, production=True)
    warnings = settings.warnings_about(config)
    oks: list[str] = []
    # Without a base URL (development only), links follow each request: nothing to compare.
    if config["BASE_URL_IS_SET"]:
        base = str(config["BASE_URL"])
        expected = urlsplit(base).netloc.lower()
        if host is not None:
            if host.strip().lower() == expected:
                oks.append(f"SUPPORTERS_BASE_URL names the host readers use ({expected}).")
            else:
                problems.append(
                    f"Readers use {host.strip()}, but SUPPORTERS_BASE_URL is {base}: emailed links "
                    f"and Stripe's return addresses lead to {expected} instead."
                )
        if probe:
            answer, fine = _probe(base + "/healthz")
            (oks if fine else warnings).append(answer)
    for line in oks:
        click.echo(f"ok: {line}")
    for line in warnings:
        click.echo(f"warning: {line}")
    for line in problems:
        click.echo(f"problem: {line}")
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) to fix before going live.")
    click.echo("No problems: production starts with these settings.")


def _probe(url: str) -> tuple[str, bool]:
    """Ask the health check at ``url``; return what it said and whether that was this app, well."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
            body = response.read(4096)
    except urllib.error.HTTPError as exc:
        return f"{url} answers {exc.code}: is the app behind it healthy, and is it this app?", False
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return (
            f"{url} does not answer ({reason}): readers following an emailed link or coming "
            "back from Stripe would find nothing there.",
            False,
        )
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        status = None
    if status != "ok":
        return f"{url} answers, but not as this app's health check does: is it another site?", False
    return f"{url} answers: the base URL reaches the app and its database.", True
