"""Who may vote in a poll, why not, and what their ballot would weigh.

Patrons whose membership entitles them may vote (billing's ``status_of`` and ``with_grant``
decide that, in one place); a poll restricted to tiers also wants their tier to be allowed. A
member entitled by a grant votes as a patron of the grant's tier: its weight, and in polls
weighted by amount that tier's monthly amount (in the site's currency, so a pledge made
elsewhere in another currency needs no exchange rate).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.billing.grant_models import Grant
from supporters.billing.grants import entitling
from supporters.billing.membership import (
    MembershipStatus,
    current_subscription,
    current_subscription_id,
    status_of,
    with_grant,
)
from supporters.billing.models import Subscription, SubscriptionStatus, Tier
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting.models import Poll, PollTierRule, Weighting
from supporters.voting.weights import Support, ballot_weight


@dataclass(frozen=True)
class GrantedSupport:
    """A grant's tier, seen as the support a ballot's weight reads."""

    tier_id: int | None
    monthly_amount: int
    currency: str

    @classmethod
    def of(cls, grant: Grant) -> GrantedSupport:
        return cls(grant.tier_id, grant.tier.monthly_amount, grant.tier.currency)


class Refusal(enum.StrEnum):
    """Why someone may not vote in a poll."""

    SIGNED_OUT = "signed_out"
    NOT_PATRON = "not_patron"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    LAPSED = "lapsed"
    TIER = "tier"


@dataclass(frozen=True)
class Eligibility:
    """Whether a person may vote in a poll now, why not, and what their ballot would weigh."""

    refusal: Refusal | None
    membership: MembershipStatus
    weight: int = 0

    @property
    def may_vote(self) -> bool:
        return self.refusal is None

    @property
    def message(self) -> str:
        messages = {
            Refusal.SIGNED_OUT: _("Sign in as a patron to vote."),
            Refusal.NOT_PATRON: _("Only patrons can vote. Become a patron to have your say."),
            Refusal.PENDING: _(
                "Your first payment is still being processed. You can vote once it is through."
            ),
            Refusal.ON_HOLD: _(
                "Your last payment did not go through, so your benefits are paused. Update your "
                "card to vote again."
            ),
            Refusal.LAPSED: _(
                "Your support has lapsed, so you cannot vote. Renew your support to vote again."
            ),
            Refusal.TIER: _("This poll is for patrons of some tiers only, and yours is not one."),
        }
        return messages[self.refusal] if self.refusal else ""


_MEMBERSHIP_REFUSALS = {
    MembershipStatus.NONE: Refusal.NOT_PATRON,
    MembershipStatus.PENDING: Refusal.PENDING,
    MembershipStatus.ON_HOLD: Refusal.ON_HOLD,
    MembershipStatus.LAPSED: Refusal.LAPSED,
}


def tier_rules(poll: Poll) -> dict[int, PollTierRule]:
    """The poll's rules by tier id."""
    return {rule.tier_id: rule for rule in poll.tier_rules}


def check_eligibility(
    poll: Poll, member: Member | None, at: dt.datetime, subscription: Subscription | None = None
) -> Eligibility:
    """May this person vote in this poll at ``at``, and with what weight?

    Patrons whose membership entitles them (active, or past_due within the grace period) may
    vote; a poll restricted to tiers also wants their tier to be allowed. The weight follows
    the poll's rule (see :mod:`supporters.voting.weights`). ``subscription`` is the member's
    current one when the caller has it (loaded with the session); without it, it is looked up.
    """
    if member is None:
        return Eligibility(Refusal.SIGNED_OUT, MembershipStatus.NONE)
    if subscription is None:
        subscription = current_subscription(member.id)
    membership, grant = with_grant(status_of(subscription, at), member.id, at)
    if not membership.is_entitled:
        return Eligibility(_MEMBERSHIP_REFUSALS[membership], membership)
    support: Support
    if grant is not None:
        support = GrantedSupport.of(grant)
    else:
        assert subscription is not None  # entitled by no grant means by a subscription
        support = subscription
    needs_rules = poll.is_restricted_to_tiers or poll.weighting is Weighting.TIER
    rules = tier_rules(poll) if needs_rules else {}
    if poll.is_restricted_to_tiers:
        rule = rules.get(support.tier_id) if support.tier_id is not None else None
        if rule is None or not rule.may_vote:
            return Eligibility(Refusal.TIER, membership)
    return Eligibility(None, membership, ballot_weight(poll, support, rules))


def allowed_tier_ids(poll: Poll) -> list[int]:
    """Tiers whose patrons may vote in a poll restricted to tiers."""
    return [rule.tier_id for rule in poll.tier_rules if rule.may_vote]


def allowed_tiers(poll: Poll) -> list[Tier]:
    """The tiers a poll restricted to tiers lets vote, in the order patrons see them."""
    if not poll.is_restricted_to_tiers:
        return []
    return list(
        db.session.scalars(
            sa.select(Tier).where(Tier.id.in_(allowed_tier_ids(poll))).order_by(Tier.position)
        )
    )


_ENTITLING_STATUSES = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
)


def entitled_member_ids(poll: Poll, at: dt.datetime) -> list[int]:
    """Every member who may vote in the poll at ``at``, as :func:`check_eligibility` decides
    for one: their current subscription entitles them (else a grant does), and a poll restricted
    to tiers allows its tier. For telling them all at once (a poll opened, its results)."""
    query = (
        sa.select(Subscription)
        .join(Member, Subscription.id == current_subscription_id(Member.id))
        .where(Subscription.status.in_(_ENTITLING_STATUSES))
    )
    granted = sa.select(Grant.member_id).where(entitling(at))
    if poll.is_restricted_to_tiers:
        allowed = allowed_tier_ids(poll)
        query = query.where(Subscription.tier_id.in_(allowed))
        granted = granted.where(Grant.tier_id.in_(allowed))
    by_subscription = {
        subscription.member_id
        for subscription in db.session.scalars(query)
        if status_of(subscription, at).is_entitled
    }
    # A member whose current subscription does not entitle them may vote by a grant (of an
    # allowed tier); one whose subscription entitles them votes as its tier says, not the grant's.
    entitled_by_subscription = {
        s.member_id
        for s in db.session.scalars(
            sa.select(Subscription)
            .join(Member, Subscription.id == current_subscription_id(Member.id))
            .where(Member.id.in_(granted), Subscription.status.in_(_ENTITLING_STATUSES))
        )
        if status_of(s, at).is_entitled
    }
    by_grant = set(db.session.scalars(granted)) - entitled_by_subscription
    return sorted(by_subscription | by_grant)
