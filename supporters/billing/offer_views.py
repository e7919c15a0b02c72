"""An offer's pages: its link, which signs the member in once, and its pre-filled confirmation,
whose form opens a checkout with the offer's deferred first charge.

The routes are added to billing's blueprint (``create_app`` imports this module before
registering it). A GET writes nothing: the link's page has a button, so that mail scanners
following links use nothing up, as with the sign-in link.
"""

from __future__ import annotations

import logging
import secrets

from flask import flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import login_required

from supporters import web
from supporters.billing import choices, errors, offers
from supporters.billing import stripe_gateway as gateway
from supporters.billing.backend import backend
from supporters.billing.forms import OfferForm
from supporters.billing.models import Offer, Tier
from supporters.billing.views import (
    _allow_stripe_redirects,
    _already_supporting,
    _tier_labels,
    bp,
)
from supporters.extensions import db
from supporters.members import auth, limits
from supporters.members import services as member_services
from supporters.members.forms import EmptyForm
from supporters.money import to_decimal

log = logging.getLogger(__name__)


def _refused(exc: offers.OfferRefused, status: int | None = None) -> tuple[str, int]:
    """The page of a link or offer that cannot be used, with the way on: signing in normally
    leads back to the offer while it can still be taken up."""
    offer_page = None
    if exc.offer is not None and exc.offer.used_at is None and exc.status != 404:
        offer_page = url_for("billing.show_offer", offer_id=exc.offer.id)
    return (
        render_template("billing/offer_refused.html", message=exc.message, offer_page=offer_page),
        status or exc.status,
    )


@bp.route("/offer/<offer_token>", methods=["GET", "POST"])
@limits.attempt_limit
def open_offer(offer_token: str) -> ResponseReturnValue:
    """An offer's emailed link: a page whose button signs the member in, once, and goes on to
    the offer."""
    g.no_store = True
    form = EmptyForm()
    if request.method == "GET":
        try:
            offer = offers.check_link(offer_token)
        except offers.OfferRefused as exc:
            return _refused(exc)
        terms = offers.offer_terms(offer)
        return render_template("billing/offer_link.html", offer=offer, terms=terms, form=form)
    if not form.validate_on_submit():
        message = _("The form expired. Open the link from your email again.")
        return render_template("billing/offer_refused.html", message=message), 400
    try:
        offer = offers.redeem_link(offer_token)
        auth.sign_in_by_link(
            offer.member, user_agent=request.user_agent.string, locale=str(get_locale())
        )
    except offers.OfferRefused as exc:
        db.session.rollback()
        return _refused(exc)
    except member_services.SignInError as exc:
        db.session.rollback()
        refused = offers.OfferRefused(exc.message, status=403, offer=offer)
        return _refused(refused)
    db.session.commit()
    flash(_("You are signed in as %(email)s.", email=offer.member.email), "success")
    return redirect(url_for("billing.show_offer", offer_id=offer.id), code=303)


def _prepare(form: OfferForm) -> list[Tier]:
    tiers = list(choices.active_tiers())
    form.set_tiers(tiers, _tier_labels(tiers))
    return tiers


def _prefill(form: OfferForm, offer: Offer) -> None:
    choice = offers.offer_choice(offer)
    if choice.tier is not None and choice.tier.is_active:
        form.tier.data = choice.tier.slug
    else:
        form.tier.data = choices.CUSTOM
        form.amount.data = str(to_decimal(choice.amount, choice.currency))
    form.interval.data = offer.interval.value
    form.attempt.data = secrets.token_urlsafe(16)


def _render_offer(offer: Offer, form: OfferForm, status: int = 200) -> tuple[str, int]:
    _allow_stripe_redirects()
    return (
        render_template(
            "billing/offer.html",
            offer=offer,
            terms=offers.offer_terms(offer),
            form=form,
            is_demo=backend().name == "demo",
        ),
        status,
    )


@bp.route("/account/offers/<int:offer_id>", methods=["GET", "POST"])
@login_required
def show_offer(offer_id: int) -> ResponseReturnValue:
    """The member's offer, pre-filled: confirm (or change the tier), then on to checkout."""
    member = auth.current_member()
    offer = offers.member_offer(member.id, offer_id)
    if offer is None:
        return _refused(offers.OfferRefused(_("There is no such offer."), status=404))
    try:
        offers.check_open(offer)
    except offers.OfferRefused as exc:
        return _refused(exc)
    form = OfferForm()
    _prepare(form)
    if not form.is_submitted():
        _prefill(form, offer)
        return _render_offer(offer, form)
    if not form.validate_on_submit():
        return _render_offer(offer, form, 400)
    try:
        choice = choices.make_choice(
            tier_slug=form.tier.data or "",
            amount=getattr(form.amount, "minor_units", None),
            interval=form.interval.data or "month",
        )
    except errors.BillingError as exc:
        form.amount.errors = [exc.message]
        return _render_offer(offer, form, 400)
    return _go_to_checkout(offer, form, choice)


def _go_to_checkout(offer: Offer, form: OfferForm, choice: choices.Choice) -> ResponseReturnValue:
    try:
        checkout = offers.start_offer_checkout(
            offer,
            auth.current_member(),
            choice,
            success_url=web.external_url("billing.checkout_success")
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=web.external_url("billing.show_offer", offer_id=offer.id),
            attempt=f"offer-{offer.id}-{form.attempt.data or secrets.token_urlsafe(16)}",
        )
    except errors.AlreadySupporting as exc:
        db.session.commit()  # what the member's other checkout came to, if just found out
        return _already_supporting(exc)
    except offers.OfferRefused as exc:
        db.session.rollback()
        return _refused(exc)
    except (errors.BillingError, gateway.StripeError) as exc:
        db.session.rollback()
        if isinstance(exc, errors.BillingError):
            form.tier.errors = [exc.message]
            return _render_offer(offer, form, 409)
        log.error("Checkout could not start from offer %s: %s", offer.id, exc)
        form.tier.errors = [
            _("Payments are unavailable right now. Nothing was charged; please try again soon.")
        ]
        return _render_offer(offer, form, 502)
    db.session.commit()  # the checkout row, and the customer row if it was just made
    return redirect(checkout.url or url_for("billing.manage"), code=303)
