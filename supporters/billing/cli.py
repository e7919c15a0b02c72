"""``flask --app supporters billing …``: Stripe set-up, replay, reconciliation, checks."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from supporters import audit
from supporters.billing import errors, repricing, stripe_sync, webhooks
from supporters.billing import reconcile as reconcile_module
from supporters.billing import stripe_gateway as gateway
from supporters.billing.models import StripeEvent, Tier
from supporters.extensions import db
from supporters.money import to_decimal

billing_cli = AppGroup("billing", help="Stripe products, webhooks and reconciliation.")


def _require_stripe() -> None:
    if not gateway.is_configured():
        raise click.ClickException(
            "SUPPORTERS_STRIPE_SECRET_KEY is not set (see `flask billing check`)."
        )


@billing_cli.command("sync-stripe")
def sync_stripe() -> None:
    """Create or update Stripe products and prices for the tiers (idempotent)."""
    _require_stripe()
    try:
        report = stripe_sync.sync_stripe()
    except gateway.StripeError as exc:
        db.session.rollback()
        raise click.ClickException(f"Stripe refused: {exc}") from exc
    db.session.commit()
    try:
        stripe_sync.archive_prices(report.replaced, report)
    except gateway.StripeError as exc:
        raise click.ClickException(
            f"The tiers sell their new prices, but archiving the old ones failed: {exc}. "
            "Run this command again to archive them."
        ) from exc
    for label, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("archived", report.archived),
    ):
        for item in items:
            click.echo(f"{label}: {item}")
    click.echo(f"{len(report.unchanged)} price(s) already up to date.")


@billing_cli.command("move-to-current-prices")
@click.option("--tier", "tier_slug", help="Only the subscribers of this tier (its short name).")
@click.option("--dry-run", is_flag=True, help="List who would move, and change nothing.")
def move_to_current_prices(tier_slug: str | None, dry_run: bool) -> None:
    """Move subscribers who pay an older price of their tier to its current price.

    The new price applies from each subscription's next renewal, without prorating. Each
    subscription is committed as Stripe confirms it, so a run that stops halfway can be run
    again: the ones already moved pay the current price and are not listed any more.
    """
    _require_stripe()
    subscriptions = repricing.on_older_prices(tier_slug)
    failed = 0
    for subscription in subscriptions:
        tier = subscription.tier
        assert tier is not None
        line = (
            f"{subscription.stripe_subscription_id} (member {subscription.member_id}, {tier.slug}):"
            f" {to_decimal(subscription.amount, subscription.currency)} {subscription.currency}"
            f" -> {to_decimal(tier.amount_for(subscription.interval), tier.currency)}"
            f" {tier.currency} a {subscription.interval.value}"
        )
        if dry_run:
            click.echo(f"would move {line}")
            continue
        try:
            repricing.move_to_current_price(subscription)
        except (errors.BillingError, gateway.StripeError) as exc:
            db.session.rollback()
            failed += 1
            click.echo(f"failed {line}: {getattr(exc, 'message', exc)}", err=True)
            continue
        db.session.commit()
        click.echo(f"moved {line}")
    verb = "would move" if dry_run else "moved"
    click.echo(f"{len(subscriptions) - failed} subscription(s) {verb}.")
    if failed:
        raise click.ClickException(f"{failed} subscription(s) could not be moved; run it again.")


@billing_cli.command("replay-events")
@click.option("--limit", default=1000, show_default=True, help="Most events to replay in one run.")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Queue them for the workers (retrying their jobs) instead of processing them here.",
)
def replay_events(limit: int, enqueue: bool) -> None:
    """Process again the recorded Stripe events that failed or were never processed.

    By default here and now, in this process (each event committed on its own); with
    --enqueue, by the workers.
    """
    _require_stripe()
    if enqueue:
        queued = webhooks.queue_unprocessed(audit.SYSTEM, limit)
        db.session.commit()
        click.echo(f"Queued {queued} event(s) for the workers." if queued else "No failed events.")
        return
    counts = webhooks.replay_failed(limit)
    if not counts:
        click.echo("No failed events.")
        return
    click.echo("Processed in this process:")
    for outcome, count in sorted(counts.items()):
        click.echo(f"{outcome.value}: {count}")
    if counts.get(webhooks.Outcome.FAILED):
        raise click.ClickException(
            "Some events failed again; their errors are stored on the events."
        )


@billing_cli.command("reconcile")
def reconcile() -> None:
    """Compare every customer and subscription with Stripe, repair drift and report it."""
    _require_stripe()
    report = reconcile_module.reconcile()
    click.echo(
        f"Checked {report.customers_checked} customer(s), {report.subscriptions_checked} subscription(s)."
    )
    sections = (
        ("Repaired (a webhook was missed)", report.repaired),
        ("Paying in Stripe but missing here (now added)", report.missing_here),
        ("Live here but not found in Stripe", report.missing_in_stripe),
        ("Duplicates (one member, several customers or live subscriptions)", report.duplicates),
        ("Not support (products this installation did not make; not counted)", report.not_support),
        ("Errors", report.errors),
    )
    for title, lines in sections:
        if lines:
            click.echo(f"\n{title}:")
            for line in lines:
                click.echo(f"  - {line}")
    if report.is_clean:
        click.echo("No drift: Stripe and the database agree.")
    if report.errors:
        raise click.ClickException("Stripe could not be read for some customers.")


@billing_cli.command("check")
def check() -> None:
    """Say what is missing or wrong in the Stripe set-up."""
    config = current_app.config
    problems: list[str] = []
    notes: list[str] = []
    secret, publishable = config["STRIPE_SECRET_KEY"], config["STRIPE_PUBLISHABLE_KEY"]
    if not secret:
        problems.append(
            "SUPPORTERS_STRIPE_SECRET_KEY is not set: the demo checkout is used, no money moves."
        )
    else:
        mode = (
            "live"
            if secret.startswith(("sk_live_", "rk_live_"))
            else "test"
            if secret.startswith(("sk_test_", "rk_test_"))
            else None
        )
        if mode is None:
            problems.append(
                "SUPPORTERS_STRIPE_SECRET_KEY does not look like a Stripe secret key (sk_test_… or sk_live_…)."
            )
        if publishable and mode and not publishable.startswith(f"pk_{mode}_"):
            problems.append(f"The publishable key is not a {mode}-mode key like the secret key.")
        if mode == "live" and not config["IS_PRODUCTION"]:
            problems.append("A live-mode key in development: real cards would be charged.")
        if mode == "test" and config["IS_PRODUCTION"]:
            notes.append("Test-mode keys in production: no real money moves.")
    secrets = config["STRIPE_WEBHOOK_SECRET"]
    if not secrets:
        problems.append(
            "SUPPORTERS_STRIPE_WEBHOOK_SECRET is not set: webhooks will be refused (400)."
        )
    elif any(not s.startswith("whsec_") for s in secrets):
        problems.append("A webhook secret does not start with whsec_.")
    unsynced = db.session.scalars(
        sa.select(Tier.slug).where(
            Tier.is_active,
            sa.or_(Tier.stripe_monthly_price_id.is_(None), Tier.stripe_yearly_price_id.is_(None)),
        )
    ).all()
    if secret and unsynced:
        problems.append(
            f"Tiers without Stripe prices: {', '.join(unsynced)}. Run `flask --app supporters billing sync-stripe`."
        )
    failed = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(StripeEvent)
        .where(StripeEvent.processed_at.is_(None), StripeEvent.error != "")
    )
    if failed:
        problems.append(
            f"{failed} webhook event(s) failed (their jobs try again; see /staff/background)."
            " Run `flask --app supporters billing replay-events` to process them now."
        )
    ignored = db.session.scalar(
        sa.select(sa.func.count()).select_from(StripeEvent).where(StripeEvent.ignored_reason != "")
    )
    if ignored:
        recent = db.session.scalars(
            sa.select(StripeEvent.ignored_reason)
            .where(StripeEvent.ignored_reason != "")
            .order_by(StripeEvent.id.desc())
            .limit(50)
        ).all()
        latest = list(dict.fromkeys(recent))[:3]  # one event's objects make several events
        notes.append(
            f"{ignored} webhook event(s) ignored: Stripe sends every event of the account, and"
            f" these were not this installation's to act on. Latest: {'; '.join(latest)}."
        )
    notes.append(
        f"API version pinned: {gateway.API_VERSION}. Webhook endpoint: {config['BASE_URL']}/stripe/webhook"
    )
    for note in notes:
        click.echo(f"note: {note}")
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found.")
    click.echo("Stripe set-up looks right.")
