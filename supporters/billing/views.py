"""The support page, joining through checkout, and the member's own support settings."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from supporters import web
from supporters.billing import (
    choices,
    errors,
    figures,
    membership,
    payments,
    self_service,
    webhooks,
)
from supporters.billing import demo_checkout as demo
from supporters.billing import emails as billing_emails
from supporters.billing import stripe_gateway as gateway
from supporters.billing.backend import backend
from supporters.billing.checkout import complete_checkout, pay_demo_checkout, start_checkout
from supporters.billing.forms import CancelForm, ChangeForm, ChoiceForm, SupportForm
from supporters.billing.models import Tier
from supporters.extensions import csrf, db, limiter
from supporters.i18n import money
from supporters.kept import kept
from supporters.members import auth
from supporters.members import emails as member_emails
from supporters.members import services as member_services
from supporters.members.forms import EmptyForm
from supporters.members.limits import TooManyMessages, ip_limit
from supporters.members.redirects import safe_next

log = logging.getLogger(__name__)

bp = Blueprint("billing", __name__)

STRIPE_PAGES = ("https://checkout.stripe.com", "https://billing.stripe.com")

bp.add_url_rule(
    "/stripe/webhook",
    "receive_webhook",
    csrf.exempt(limiter.exempt(webhooks.receive)),
    methods=["POST"],
)


def _tier_labels(tiers: list[Tier]) -> dict[str, str]:
    return {
        t.slug: _(
            "%(name)s · %(amount)s a month", name=t.name, amount=money(t.monthly_amount, t.currency)
        )
        for t in tiers
    }


def _prepare(form: ChoiceForm) -> list[Tier]:
    tiers = list(choices.active_tiers())
    form.set_tiers(tiers, _tier_labels(tiers))
    return tiers


def _choice(form: ChoiceForm) -> choices.Choice:
    """:raises errors.BillingError: see :func:`choices.make_choice`."""
    return choices.make_choice(
        tier_slug=form.tier.data or "",
        amount=getattr(form.amount, "minor_units", None),
        interval=form.interval.data or "month",
    )


def _allow_stripe_redirects() -> None:
    # After our form posts, the browser is redirected to Stripe's own pages.
    web.allow_csp("form-action", *STRIPE_PAGES)


def _render_support(form: SupportForm, tiers: list[Tier], status: int = 200) -> tuple[str, int]:
    goals = figures.active_goals()
    now = figures.totals() if goals else None
    progress = {goal.id: figures.goal_value(goal, now) for goal in goals if now}
    _allow_stripe_redirects()
    # A member already supporting is told where their support is managed, before choosing.
    supporting = (
        membership.status_of(current_user.subscription)  # loaded with the session
        if current_user.is_authenticated
        else membership.MembershipStatus.NONE
    )
    return (
        render_template(
            "billing/support.html",
            form=form,
            tiers=tiers,
            goals=goals,
            progress=progress,
            minimum=money(choices.minimum_amount(), current_app.config["CURRENCY"]),
            is_demo=backend().name == "demo",
            supporting=supporting,
        ),
        status,
    )


@bp.get("/")
def support() -> tuple[str, int]:
    """Show what supporting the newsroom costs and what it pays for, with the join form.

    Every reader lands here. A reader not signed in, with no message waiting, gets the page
    each worker drew within the last ``PUBLIC_CACHE_SECONDS`` (``supporters.kept``), with their
    own form tokens written in: the figures show a payment within that second.
    """
    if current_user.is_authenticated or session.get("_flashes"):
        return _render_support(*_support_form())
    page = kept(("billing.support", str(get_locale()), web.base_url()), _page_for_anyone)
    _allow_stripe_redirects()
    own = page.replace(_CSRF_MARK, generate_csrf()).replace(_ATTEMPT_MARK, _new_attempt())
    return own, 200


#: Where the page kept for everyone holds each reader's own form tokens (no token has a space).
_CSRF_MARK = "{ csrf token }"
_ATTEMPT_MARK = "{ attempt }"


def _new_attempt() -> str:
    return secrets.token_urlsafe(16)


def _support_form() -> tuple[SupportForm, list[Tier]]:
    form = SupportForm(attempt=_new_attempt())
    tiers = _prepare(form)
    if tiers and not form.tier.data:
        form.tier.data = tiers[min(1, len(tiers) - 1)].slug
    return form, tiers


def _page_for_anyone() -> str:
    """The support page as a reader not signed in sees it, their form tokens marked."""
    form, tiers = _support_form()
    page, _status = _render_support(form, tiers)
    return page.replace(generate_csrf(), _CSRF_MARK).replace(form.attempt.data, _ATTEMPT_MARK)


def _go_to_checkout(choice: choices.Choice, attempt: str) -> Response:
    member = auth.current_member()
    try:
        checkout = start_checkout(
            member,
            choice,
            success_url=web.external_url("billing.checkout_success")
            + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=web.external_url("billing.checkout_cancelled"),
            attempt=attempt,
        )
    except errors.AlreadySupporting:
        db.session.commit()  # what the member's other checkout came to, if it was just found out
        raise
    db.session.commit()  # the checkout row, and the customer row if it was just made
    return redirect(checkout.url or url_for("billing.support"), code=303)


@bp.post("/support")
@ip_limit
def checkout() -> ResponseReturnValue:
    """Start joining: straight to checkout when signed in, else confirm the email first."""
    form = SupportForm()
    tiers = _prepare(form)
    if not form.validate_on_submit():
        return _render_support(form, tiers, 400)
    try:
        choice = _choice(form)
    except errors.BillingError as exc:
        form.amount.errors = [exc.message]
        return _render_support(form, tiers, 400)
    attempt = form.attempt.data or secrets.token_urlsafe(16)
    pending = {
        "tier": form.tier.data,
        "amount": choice.amount,
        "interval": form.interval.data,
        "attempt": attempt,
    }
    if not current_user.is_authenticated:
        return _sign_in_then_continue(form, tiers, pending)
    try:
        return _go_to_checkout(choice, attempt)
    except errors.AlreadySupporting as exc:
        return _already_supporting(exc)
    except (errors.BillingError, gateway.StripeError) as exc:
        return _checkout_failed(form, tiers, exc)


def _already_supporting(exc: errors.AlreadySupporting) -> Response:
    """To the member's support page, saying what they can do there: a paused subscription is
    not changed but fixed (a new card) or cancelled."""
    if membership.membership_of(auth.current_member().id) is membership.MembershipStatus.ON_HOLD:
        message = _(
            "Your support is paused because a payment did not go through. Update your card "
            "to resume it, or cancel it."
        )
    else:
        message = exc.message
    flash(message, "info")
    return redirect(url_for("billing.manage"))


def _checkout_failed(form: SupportForm, tiers: list[Tier], exc: Exception) -> tuple[str, int]:
    db.session.rollback()
    if isinstance(exc, errors.BillingError):
        form.tier.errors = [exc.message]
        return _render_support(form, tiers, 409)
    log.error("Checkout could not start: %s", exc)
    form.tier.errors = [
        _("Payments are unavailable right now. Nothing was charged; please try again soon.")
    ]
    return _render_support(form, tiers, 502)


def _sign_in_then_continue(
    form: SupportForm, tiers: list[Tier], pending: dict[str, Any]
) -> ResponseReturnValue:
    email = getattr(form.email, "normalized", None)
    if not email:
        form.email.errors = [_("Enter your email address: we send you a code to confirm it.")]
        return _render_support(form, tiers, 400)
    # The choice rides in the next URL, so it survives sign-in, even on another device. It holds
    # form values, so it is checked like any other; a tampered one leads to the account page.
    try:
        issued = member_services.request_sign_in(
            email,
            next_url=safe_next(url_for("billing.confirm_choice", **pending)),
            ip_address=request.remote_addr or "",
        )
    except TooManyMessages as exc:
        db.session.rollback()
        form.email.errors = [exc.message]
        page, status = _render_support(form, tiers, 429)
        return page, status, {"Retry-After": str(exc.retry_after)}
    member_emails.queue_sign_in(issued)
    db.session.commit()
    auth.await_code(issued)
    return redirect(url_for("members.enter_code"))


def _pending_choice() -> tuple[choices.Choice, str] | None:
    args = request.args
    try:
        choice = choices.make_choice(
            tier_slug=args.get("tier", ""),
            amount=int(args.get("amount", "")),
            interval=args.get("interval", ""),
        )
    except (errors.BillingError, ValueError):
        return None
    return choice, args.get("attempt", "")[:64] or secrets.token_urlsafe(16)


@bp.route("/support/continue", methods=["GET", "POST"])
@login_required
def confirm_choice() -> Response | str:
    """After signing in from the support page: confirm the choice, then go to checkout."""
    found = _pending_choice()
    if found is None:
        return redirect(url_for("billing.support"))
    choice, attempt = found
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            return _go_to_checkout(choice, attempt)
        except errors.AlreadySupporting as exc:
            return _already_supporting(exc)
        except (errors.BillingError, gateway.StripeError) as exc:
            db.session.rollback()
            log.error("Checkout could not start: %s", exc)
            flash(
                _(
                    "Payments are unavailable right now. Nothing was charged; please try again soon."
                ),
                "error",
            )
            return redirect(url_for("billing.support"))
    _allow_stripe_redirects()
    return render_template("billing/confirm_choice.html", choice=choice, form=form)


@bp.get("/support/welcome")
@login_required
def checkout_success() -> str | Response:
    """Back from checkout: ask the provider what really happened; never trust the redirect."""
    session_id = request.args.get("session_id", "")
    if not session_id:
        return redirect(url_for("billing.manage"))
    try:
        checkout = complete_checkout(session_id, member_id=auth.current_member().id)
    except errors.BillingError as exc:
        db.session.rollback()
        abort(403, exc.message)
    except (gateway.StripeError, demo.DemoCheckoutError):
        db.session.rollback()
        abort(404)
    db.session.commit()
    subscription = membership.current_subscription(auth.current_member().id)
    status = membership.status_of(subscription)
    return render_template(
        "billing/welcome.html", checkout=checkout, status=status, subscription=subscription
    )


@bp.get("/support/cancelled")
def checkout_cancelled() -> Response:
    """The reader left checkout without paying: nothing happened."""
    flash(_("You left the payment page; nothing was charged."), "info")
    return redirect(url_for("billing.support"))


def _render_manage(
    change_form: ChangeForm | None = None, cancel_form: CancelForm | None = None, status: int = 200
) -> tuple[str, int]:
    member = auth.current_member()
    subscription = membership.current_subscription(member.id)
    change_form = change_form or ChangeForm()
    _prepare(change_form)
    if subscription and not change_form.is_submitted():
        change_form.tier.data = subscription.tier.slug if subscription.tier else "custom"
        change_form.interval.data = subscription.interval.value
    _allow_stripe_redirects()
    return (
        render_template(
            "billing/manage.html",
            subscription=subscription,
            status=membership.status_of(subscription),
            ends_when_cancelled=subscription is not None
            and self_service.ends_when_cancelled(subscription),
            payments=payments.payments_of(member.id),
            change_form=change_form,
            cancel_form=cancel_form or CancelForm(),
            action_form=EmptyForm(),
            grace_days=current_app.config["GRACE_PERIOD_DAYS"],
            # This page says what the banner says, and the banner's link would lead back here.
            membership_banner=None,
        ),
        status,
    )


@bp.get("/account/support")
@login_required
def manage() -> tuple[str, int]:
    """The member's support: status, amount, next payment, receipts, and what they can change."""
    return _render_manage()


def _self_service_failed(exc: Exception) -> Response:
    db.session.rollback()
    if isinstance(exc, errors.BillingError):
        flash(exc.message, "error")
    else:
        log.error("Self-service change failed: %s", exc)
        flash(
            _("Payments are unavailable right now; nothing was changed. Please try again soon."),
            "error",
        )
    return redirect(url_for("billing.manage"))


@bp.post("/account/support/change")
@login_required
def change() -> Response | tuple[str, int]:
    """Change tier, amount or interval now; Stripe prorates the difference."""
    form = ChangeForm()
    _prepare(form)
    if not form.validate_on_submit():
        return _render_manage(change_form=form, status=400)
    try:
        self_service.change_subscription(auth.current_member(), _choice(form))
    except (errors.BillingError, gateway.StripeError) as exc:
        return _self_service_failed(exc)
    db.session.commit()
    flash(_("Your support is changed. Thank you!"), "success")
    return redirect(url_for("billing.manage"))


@bp.post("/account/support/cancel")
@login_required
def cancel() -> Response | tuple[str, int]:
    """Stop renewing at the end of the paid period, or now if the renewal was not paid."""
    form = CancelForm()
    if not form.validate_on_submit():
        return _render_manage(cancel_form=form, status=400)
    try:
        subscription = self_service.cancel_subscription(
            auth.current_member(), reason=form.reason.data or ""
        )
    except (errors.BillingError, gateway.StripeError) as exc:
        return _self_service_failed(exc)
    db.session.commit()
    from supporters.i18n import date

    if subscription.ended_at is not None:
        flash(
            _("Your support has ended, and your card will not be charged again. Thank you!"),
            "info",
        )
    else:
        flash(
            _(
                "Your support ends on %(date)s. You can resume it until then.",
                date=date(subscription.current_period_end),
            ),
            "info",
        )
    return redirect(url_for("billing.manage"))


@bp.post("/account/support/resume")
@login_required
def resume() -> Response:
    """Take back a scheduled cancellation."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        self_service.resume_subscription(auth.current_member())
    except (errors.BillingError, gateway.StripeError) as exc:
        return _self_service_failed(exc)
    db.session.commit()
    flash(_("Welcome back: your support continues."), "success")
    return redirect(url_for("billing.manage"))


@bp.get("/account/support/card/<card_token>")
@login_required
def fix_card(card_token: str) -> Response:
    """A payment notice's link: the member's support page, where the card is updated."""
    member_id = billing_emails.read_fix_card_token(card_token)
    if member_id is None:
        flash(_("That link is too old or not one of ours. Update your card here."), "info")
    elif member_id != auth.current_member().id:
        flash(
            _(
                "That link was sent to another account. To update its card, sign out and "
                "sign in with the address it was sent to."
            ),
            "warning",
        )
    return redirect(url_for("billing.manage") + "#card")


@bp.post("/account/support/portal")
@login_required
def open_portal() -> Response:
    """Send the member to Stripe's Billing Portal to update their card or download invoices."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        url = self_service.portal_url(
            auth.current_member(), return_url=web.external_url("billing.manage")
        )
    except (errors.BillingError, gateway.StripeError) as exc:
        return _self_service_failed(exc)
    return redirect(url, code=303)


# --- the demo checkout (no Stripe key configured; never in production) ----------------------


def _require_demo() -> None:
    if backend().name != "demo":
        abort(404)


@bp.route("/billing/demo/<session_id>", methods=["GET", "POST"])
@login_required
def demo_checkout(session_id: str) -> Response | tuple[str, int]:
    """A stand-in for Stripe Checkout: pay, decline or abandon, locally."""
    _require_demo()
    try:
        data = demo.read_session(session_id)
    except demo.DemoCheckoutError:
        abort(404)
    if data["ref"] != str(auth.current_member().id):
        abort(403)
    if demo.is_expired(session_id):
        abort(410, _("This payment page has closed: you opened another one."))
    form = EmptyForm()
    error = ""
    if form.validate_on_submit():
        action = request.form.get("action")
        if action == "pay":
            pay_demo_checkout(session_id)
            db.session.commit()
            return redirect(
                data["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id), code=303
            )
        if action == "abandon":
            return redirect(data["cancel_url"], code=303)
        error = _("Your card was declined (demo). Nothing was charged: try again or leave.")
    return (
        render_template(
            "billing/demo_checkout.html",
            data=data,
            form=form,
            error=error,
            first_charge_at=demo.first_charge_at(data),
        ),
        402 if error else 200,
    )


@bp.get("/billing/demo-portal")
@login_required
def demo_portal() -> str:
    """What the Billing Portal would offer; in the demo there is no card to update."""
    _require_demo()
    return render_template("billing/demo_portal.html")


@bp.app_context_processor
def membership_banner() -> dict[str, Any]:
    """A signed-in member whose renewal failed sees how to fix it on every page."""
    if not current_user.is_authenticated:
        return {"membership_banner": None}
    subscription = current_user.subscription  # loaded with the session
    status = membership.status_of(subscription)
    if status in (membership.MembershipStatus.GRACE, membership.MembershipStatus.ON_HOLD):
        return {"membership_banner": {"status": status, "subscription": subscription}}
    return {"membership_banner": None}
