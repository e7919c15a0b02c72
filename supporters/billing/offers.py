"""Personal offers: a signed, single-use link that signs one member in and leads to a checkout
pre-filled with a tier (or a custom amount) and an interval, its first charge deferred to a date.

A caller (an import inviting the patrons it brought, staff) makes an offer with
:func:`create_offer` and sends its link, through the outbox, to the member's address. The link
is ``<offer id>.<secret>``: the secret exists only in the link; the offer keeps its hash, keyed
with the app's secret key, and compares it in constant time. Following the link signs the
member in once (``members.auth.sign_in_by_link``) and marks the offer opened; a checkout
completed through it marks it used (``checkout``, whichever of the success page, the webhook or
the demo checkout records it first). Services flush; the caller commits.

A feature above billing that wants to know when one of its offers is first opened (the Patreon
invitation) registers a hook with :func:`on_first_opened` from ``create_app``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import gettext as _

from supporters import web
from supporters.billing.checkout import MAXIMUM_DEFERRAL, first_charge_date, start_checkout
from supporters.billing.choices import Choice, make_choice, minimum_amount
from supporters.billing.errors import BillingError
from supporters.billing.models import Interval, Offer, Tier
from supporters.billing.provider import CheckoutInfo
from supporters.db import rows_matched, utcnow
from supporters.extensions import db
from supporters.members.models import Member

#: How long an offer's link works unless the caller says otherwise.
DEFAULT_VALIDITY = dt.timedelta(days=30)

_OPENED_HOOKS = "supporters.offer_opened"

OpenedHook = Callable[[Offer], None]


def on_first_opened(app: Flask, hook: OpenedHook) -> None:
    """Call ``hook`` with an offer, in the same unit of work, the first time its link is
    followed (a feature above billing marks its own records opened)."""
    app.extensions.setdefault(_OPENED_HOOKS, []).append(hook)


class OfferRefused(BillingError):
    """A link or offer that cannot be used; ``status`` is the HTTP status that says why (404: not
    a link of ours, 410: used or expired). ``offer`` is set once the link is known to be ours."""

    def __init__(self, message: str, *, status: int, offer: Offer | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.offer = offer


def _token_hash(offer_id: int, secret: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"offer:{offer_id}:{secret}".encode(), hashlib.sha256).hexdigest()


def create_offer(
    member: Member,
    *,
    tier: Tier | None = None,
    amount: int | None = None,
    interval: Interval = Interval.MONTH,
    first_charge_at: dt.datetime | None = None,
    note: str = "",
    valid_for: dt.timedelta = DEFAULT_VALIDITY,
) -> tuple[Offer, str]:
    """Make an offer for the member: a tier, or a custom ``amount`` in minor units of the site's
    currency, every ``interval``; its first charge not before ``first_charge_at`` (None: when
    they join); ``note`` shown on its page. Returns the offer and its link, which is never
    stored: send it now (:func:`offer_url` makes a new one later).

    :raises BillingError: not exactly one of a tier and an amount, a retired tier, an amount
        outside the site's limits, a naive or too distant date, or a validity that is not
        positive.
    """
    if (tier is None) == (amount is None):
        raise BillingError(_("An offer is for a tier or for an amount, not both or neither."))
    if tier is not None and not tier.is_active:
        raise BillingError(_("This tier is not offered any more. Please choose another."))
    if amount is not None:
        # The support form's checks: the smallest and largest amounts, in the site's currency.
        make_choice(tier_slug="", amount=amount, interval=interval.value)
    now = utcnow()
    if first_charge_at is not None:
        if first_charge_at.tzinfo is None:
            raise BillingError("first_charge_at must be timezone-aware")
        if first_charge_at > now + MAXIMUM_DEFERRAL:
            raise BillingError(_("A first charge can be deferred by two years at most."))
    if valid_for <= dt.timedelta(0):
        raise BillingError("an offer must be valid for some time")
    offer = Offer(
        member_id=member.id,
        tier_id=tier.id if tier is not None else None,
        amount=amount,
        currency=current_app.config["CURRENCY"] if amount is not None else None,
        interval=interval,
        first_charge_at=first_charge_at,
        note=note.strip(),
        token_hash="",
        expires_at=now + valid_for,
        created_at=now,
    )
    db.session.add(offer)
    db.session.flush()
    return offer, offer_url(offer)


def offer_url(offer: Offer) -> str:
    """A new link to the offer, also outside a request (a job sending reminders). Each call
    makes a new secret, so the offer's earlier links stop working, and a link already followed
    works once more (a reminder to a member who opened it and did not finish).

    :raises BillingError: the offer was used.
    """
    if offer.used_at is not None:
        raise BillingError(_("This offer has already been taken up."))
    secret = secrets.token_urlsafe(32)
    offer.token_hash = _token_hash(offer.id, secret)
    offer.link_used_at = None
    db.session.flush()
    return web.external_url("billing.open_offer", offer_token=f"{offer.id}.{secret}")


def _parse(token: str) -> tuple[int, str] | None:
    offer_ref, _dot, secret = token.partition(".")
    if not offer_ref.isdigit() or len(offer_ref) > 18 or not secret:
        return None
    return int(offer_ref), secret


def check_link(token: str, *, lock: bool = False) -> Offer:
    """The offer of a link that can still be followed; reads only (``lock``: its row locked).

    :raises OfferRefused: 404 for a link not made here (forged or altered); 410 for one
        followed before, one whose offer was used, or an expired one.
    """
    parsed = _parse(token)
    offer = None
    if parsed is not None:
        query = sa.select(Offer).where(Offer.id == parsed[0])
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        offer = db.session.scalars(query).first()
    # Compared in constant time, and against a hash even when there is no such offer.
    expected = offer.token_hash if offer is not None else "0" * 64
    given = _token_hash(*parsed) if parsed is not None else ""
    if offer is None or not hmac.compare_digest(expected, given):
        raise OfferRefused(_("This link is not valid. Check that it was copied whole."), status=404)
    check_open(offer)
    if offer.link_used_at is not None:
        raise OfferRefused(
            _("This link has already been used. Sign in with your email address to continue."),
            status=410,
            offer=offer,
        )
    return offer


def check_open(offer: Offer, now: dt.datetime | None = None) -> None:
    """:raises OfferRefused: 410, the offer was used or has expired."""
    if offer.used_at is not None:
        raise OfferRefused(
            _("You have already taken up this offer. Thank you! Sign in to see your support."),
            status=410,
            offer=offer,
        )
    if offer.expires_at <= (now or utcnow()):
        raise OfferRefused(
            _("This offer has expired. You can still support us from our support page."),
            status=410,
            offer=offer,
        )


def redeem_link(token: str) -> Offer:
    """Follow a link: it cannot be followed again, and the offer is marked opened (the first
    time). The caller signs the member in and commits.

    :raises OfferRefused: see :func:`check_link`, also when another tab followed it first.
    """
    offer = check_link(token, lock=True)
    was_opened = offer.opened_at is not None
    now = utcnow()
    used = db.session.execute(
        sa.update(Offer)
        .where(
            Offer.id == offer.id,
            Offer.token_hash == offer.token_hash,
            Offer.link_used_at.is_(None),
        )
        .values(link_used_at=now, opened_at=sa.func.coalesce(Offer.opened_at, now))
        .execution_options(synchronize_session=False)
    )
    if rows_matched(used) != 1:
        raise OfferRefused(
            _("This link has already been used. Sign in with your email address to continue."),
            status=410,
            offer=offer,
        )
    db.session.refresh(offer)
    if not was_opened:
        for hook in current_app.extensions.get(_OPENED_HOOKS, []):
            hook(offer)
    return offer


def member_offer(member_id: int, offer_id: int) -> Offer | None:
    """The member's own offer with this id, if there is one."""
    return db.session.scalar(
        sa.select(Offer).where(Offer.id == offer_id, Offer.member_id == member_id)
    )


def offers_of(member_id: int) -> Sequence[Offer]:
    """The member's offers, newest first (with when each was opened and used)."""
    return db.session.scalars(
        sa.select(Offer).where(Offer.member_id == member_id).order_by(Offer.id.desc())
    ).all()


def offer_choice(offer: Offer) -> Choice:
    """What the offer pre-fills: its tier at the tier's price for the interval, or its amount."""
    if offer.tier is not None:
        return Choice(
            tier=offer.tier,
            amount=offer.tier.amount_for(offer.interval),
            currency=offer.tier.currency,
            interval=offer.interval,
        )
    assert offer.amount is not None and offer.currency is not None  # the CHECK constraint
    return Choice(tier=None, amount=offer.amount, currency=offer.currency, interval=offer.interval)


@dataclasses.dataclass(frozen=True)
class OfferTerms:
    """What the offer's page says: the choice, and when the first charge falls (None: today)."""

    choice: Choice
    first_charge_at: dt.datetime | None
    is_below_minimum: bool


def offer_terms(offer: Offer, now: dt.datetime | None = None) -> OfferTerms:
    """The offer's choice and first charge date, as a checkout opened now would have them."""
    choice = offer_choice(offer)
    return OfferTerms(
        choice=choice,
        first_charge_at=first_charge_date(offer.first_charge_at, now),
        is_below_minimum=choice.tier is None and choice.amount < minimum_amount(),
    )


def start_offer_checkout(
    offer: Offer, member: Member, choice: Choice, *, success_url: str, cancel_url: str, attempt: str
) -> CheckoutInfo:
    """Open a checkout for the member's pick on the offer's page, with the offer's deferral; a
    completed one marks the offer used.

    :raises OfferRefused: the offer is not the member's, was used or has expired.
    :raises AlreadySupporting: see :func:`checkout.start_checkout`.
    :raises BillingError: see :func:`checkout.start_checkout`.
    """
    if offer.member_id != member.id:
        raise OfferRefused(_("This offer belongs to another account."), status=404)
    check_open(offer)
    if choice.interval is None:
        raise BillingError(
            _("Tiers renew monthly or yearly; for a one-time gift, enter an amount.")
        )
    return start_checkout(
        member,
        choice,
        success_url=success_url,
        cancel_url=cancel_url,
        attempt=attempt,
        first_charge_at=offer.first_charge_at,
        offer_id=offer.id,
    )
