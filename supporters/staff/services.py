"""Admin changes made from the staff pages: tiers, funding goals and staff roles.

Every change is recorded in the audit log with who made it, from where, and the values before
and after. Services flush; the view commits. Polls are managed by the voting package.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters import audit
from supporters.audit import Actor
from supporters.billing import stripe_gateway as gateway
from supporters.billing import stripe_sync
from supporters.billing.models import FundingGoal, GoalMeasure, Tier
from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member, Role

log = logging.getLogger(__name__)


class StaffError(Exception):
    """An admin change that cannot be made; ``message`` is fit to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StripeFailed(StaffError):
    """Stripe refused or could not be reached, so a tier's prices could not follow it."""


def _apply(obj: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set the values that differ; returns {field: [before, after]} of what changed."""
    changes = {}
    for name, value in values.items():
        before = getattr(obj, name)
        if before != value:
            changes[name] = [_plain(before), _plain(value)]
            setattr(obj, name, value)
    return changes


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _values(values: Any) -> dict[str, Any]:
    return {name: _plain(value) for name, value in dataclasses.asdict(values).items()}


@dataclasses.dataclass(frozen=True)
class TierValues:
    name: str
    slug: str
    description: str
    currency: str
    monthly_amount: int
    yearly_amount: int
    position: int
    is_active: bool


# What Stripe's product and prices of a tier say too: changing one changes Stripe first.
SOLD_FIELDS = frozenset(
    ("name", "slug", "description", "currency", "monthly_amount", "yearly_amount", "is_active")
)


@dataclasses.dataclass(frozen=True)
class SavedTier:
    """A tier as saved: what changed (for the audit log) and the Stripe prices it replaced,
    to archive once the save is committed (:func:`archive_replaced_prices`)."""

    tier: Tier
    changes: dict[str, list[Any]]
    replaced_prices: tuple[str, ...] = ()


def _check_slug(slug: str, tier_id: int | None) -> None:
    taken = db.session.scalar(sa.select(Tier.id).where(Tier.slug == slug, Tier.id != tier_id))
    if taken is not None:
        raise StaffError(_("Another tier already uses this short name."))


def _sync_prices(tier: Tier) -> stripe_sync.TierPrices:
    """Make the tier's Stripe product and prices match its new values, before they are stored.

    :raises StripeFailed: Stripe refused or could not be reached.
    """
    try:
        return stripe_sync.sync_tier(tier)
    except gateway.InvalidRequestError as exc:
        log.error("Stripe refused the prices of tier %s: %s", tier.slug, exc)
        raise StripeFailed(
            _(
                "Stripe refused the tier's prices (%(reason)s), so nothing was saved.",
                reason=exc.user_message or exc.code or type(exc).__name__,
            )
        ) from exc
    except gateway.StripeError as exc:
        log.error("Stripe failed while syncing tier %s: %s", tier.slug, exc)
        raise StripeFailed(
            _(
                "Stripe could not be reached, so nothing was saved: checkout must charge the "
                "new prices before this page shows them. Please try again in a few minutes."
            )
        ) from exc


def create_tier(values: TierValues, actor: Actor) -> SavedTier:
    """Add a tier; with Stripe configured, its product and prices are made there first.

    :raises StaffError: the short name is taken.
    :raises StripeFailed: Stripe refused or could not be reached; nothing was added.
    """
    _check_slug(values.slug, None)
    tier = Tier(**dataclasses.asdict(values))
    details = _values(values)
    replaced: tuple[str, ...] = ()
    if stripe_sync.is_configured():
        synced = _sync_prices(tier)
        _apply(tier, synced.ids())
        details.update(synced.ids())
        replaced = synced.replaced
    db.session.add(tier)
    db.session.flush()
    audit.record("tier.created", actor, tier, **details)
    return SavedTier(tier, {}, replaced)


def update_tier(tier: Tier, values: TierValues, actor: Actor) -> SavedTier:
    """Change a tier. With Stripe configured, a change of what Stripe sells (a name, an amount)
    is made in Stripe first: a new price replaces a changed one, and only then is the tier
    stored, so checkout never charges other than what the support page shows. Subscriptions
    keep the price they pay.

    :raises StaffError: the short name is taken.
    :raises StripeFailed: Stripe refused or could not be reached; nothing was changed.
    """
    _check_slug(values.slug, tier.id)
    # Applied in memory: the flush below writes them, once Stripe has followed.
    with db.session.no_autoflush:
        changes = _apply(tier, dataclasses.asdict(values))
        unsynced = not (
            tier.stripe_product_id and tier.stripe_monthly_price_id and tier.stripe_yearly_price_id
        )
        replaced: tuple[str, ...] = ()
        if stripe_sync.is_configured() and (unsynced or SOLD_FIELDS & changes.keys()):
            synced = _sync_prices(tier)
            changes.update(_apply(tier, synced.ids()))
            replaced = synced.replaced
    if changes:
        db.session.flush()
        audit.record("tier.updated", actor, tier, changes=changes)
    return SavedTier(tier, changes, replaced)


def archive_replaced_prices(saved: SavedTier) -> bool:
    """After the save is committed, archive in Stripe the prices the tier no longer sells.

    False when Stripe failed: the old prices stay active but unsold (no checkout uses them),
    and the next save of the tier or ``billing sync-stripe`` archives them.
    """
    try:
        stripe_sync.archive_prices(saved.replaced_prices)
    except gateway.StripeError as exc:
        log.warning("Could not archive replaced prices of tier %s: %s", saved.tier.slug, exc)
        return False
    return True


@dataclasses.dataclass(frozen=True)
class GoalValues:
    title: str
    description: str
    measure: GoalMeasure
    target: int
    currency: str | None
    position: int
    is_active: bool


def create_goal(values: GoalValues, actor: Actor) -> FundingGoal:
    goal = FundingGoal(**dataclasses.asdict(values))
    db.session.add(goal)
    db.session.flush()
    audit.record("goal.created", actor, goal, **_values(values))
    return goal


def update_goal(goal: FundingGoal, values: GoalValues, actor: Actor) -> dict[str, list[Any]]:
    changes = _apply(goal, dataclasses.asdict(values))
    if changes:
        db.session.flush()
        audit.record("goal.updated", actor, goal, changes=changes)
    return changes


def change_role(member: Member, role: Role, actor: Actor) -> bool:
    """Give a member another role (audited); False when they already had it.

    :raises StaffError: an admin taking their own admin role away, or the last admin going.
    """
    if member.role is role:
        return False
    if member.id == actor.member_id:
        raise StaffError(_("You cannot change your own role. Ask another admin."))
    if member.role is Role.ADMIN:
        admins = db.session.scalar(
            sa.select(sa.func.count()).select_from(Member).where(Member.role == Role.ADMIN)
        )
        if (admins or 0) <= 1:
            raise StaffError(_("This is the last admin; make someone else admin first."))
    return member_services.set_role(member, role, actor_id=actor.member_id)


def add_staff(email: str, role: Role, actor: Actor) -> tuple[Member, bool]:
    """Make the account with this address staff or admin, creating it if need be.

    Returns (member, created). The person signs in with a code sent to the address, as anyone
    does. :raises StaffError: see :func:`change_role`.
    """
    member, created = member_services.ensure_member(email)
    if created:
        audit.record("member.created_by_staff", actor, member, email=member.email)
    change_role(member, role, actor)
    return member, created
