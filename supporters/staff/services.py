"""Admin changes made from the staff pages: tiers, funding goals and staff roles.

Every change is recorded in the audit log with who made it, from where, and the values before
and after. Services flush; the view commits. Polls are managed by the voting package.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.audit import record_action
from supporters.billing.models import FundingGoal, GoalMeasure, Tier
from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member, Role


class StaffError(Exception):
    """An admin change that cannot be made; ``message`` is fit to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit log."""

    member_id: int | None
    ip_address: str = ""


def _audit(action: str, actor: Actor, obj: Any, details: dict[str, Any]) -> None:
    record_action(
        action,
        actor_id=actor.member_id,
        target_type=type(obj).__name__.lower(),
        target_id=obj.id,
        details=details,
        ip_address=actor.ip_address,
    )


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


def _check_slug(slug: str, tier_id: int | None) -> None:
    taken = db.session.scalar(sa.select(Tier.id).where(Tier.slug == slug, Tier.id != tier_id))
    if taken is not None:
        raise StaffError(_("Another tier already uses this short name."))


def create_tier(values: TierValues, actor: Actor) -> Tier:
    """Add a tier. :raises StaffError: the short name is taken."""
    _check_slug(values.slug, None)
    tier = Tier(**dataclasses.asdict(values))
    db.session.add(tier)
    db.session.flush()
    _audit("tier.created", actor, tier, _values(values))
    return tier


def update_tier(tier: Tier, values: TierValues, actor: Actor) -> dict[str, list[Any]]:
    """Change a tier; returns what changed. :raises StaffError: the short name is taken."""
    _check_slug(values.slug, tier.id)
    changes = _apply(tier, dataclasses.asdict(values))
    if changes:
        db.session.flush()
        _audit("tier.updated", actor, tier, {"changes": changes})
    return changes


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
    _audit("goal.created", actor, goal, _values(values))
    return goal


def update_goal(goal: FundingGoal, values: GoalValues, actor: Actor) -> dict[str, list[Any]]:
    changes = _apply(goal, dataclasses.asdict(values))
    if changes:
        db.session.flush()
        _audit("goal.updated", actor, goal, {"changes": changes})
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
        _audit("member.created_by_staff", actor, member, {"email": member.email})
    change_role(member, role, actor)
    return member, created
