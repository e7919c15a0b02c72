"""Admin pages: tiers, funding goals, staff accounts and the audit log.

Every change is audited by the service it calls.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import params
from supporters.billing import repricing, stripe_sync
from supporters.billing.models import FundingGoal, GoalMeasure, Tier
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor
from supporters.members.models import Role
from supporters.money import to_decimal
from supporters.staff import services
from supporters.staff.forms import AuditFilterForm, GoalForm, StaffAccountForm, TierForm
from supporters.staff.queries import admin_pages, headline
from supporters.staff.views.blueprint import bp


def _tier_values(form: TierForm) -> services.TierValues:
    return services.TierValues(
        name=form.name.data.strip(),
        slug=form.slug.data.strip(),
        description=(form.description.data or "").strip(),
        currency=form.currency.data.strip().upper(),
        monthly_amount=form.monthly_amount.minor_units,
        yearly_amount=form.yearly_amount.minor_units,
        position=form.position.data or 0,
        is_active=bool(form.is_active.data),
    )


@bp.get("/tiers")
@admin_required
def list_tiers() -> str:
    """Tiers with their prices, how many patrons each has now, and how many pay an older price."""
    tiers = admin_pages.tiers_in_order()
    counts = {t.tier_id: t.subscriptions for t in headline.now_figures().by_tier}
    return render_template(
        "staff/list_tiers.html",
        tiers=tiers,
        counts=counts,
        older=repricing.older_price_counts(),
    )


def _tier_saved(saved: services.SavedTier, message: str) -> Response:
    """Commit a tier's save, then retire in Stripe the prices it replaced."""
    db.session.commit()
    flash(message, "success")
    if not services.archive_replaced_prices(saved):
        flash(
            _(
                "Checkout charges the new prices, but Stripe did not archive the old ones yet; "
                "saving the tier again or `billing sync-stripe` does it."
            ),
            "warning",
        )
    return redirect(url_for("staff.list_tiers"))


def _render_tier(
    form: TierForm, tier: Tier | None, error: str = "", status: int | None = None
) -> tuple[str, int]:
    if status is None:
        status = 400 if form.is_submitted() else 200
    return render_template(
        "staff/edit_tier.html",
        form=form,
        tier=tier,
        error=error,
        older=repricing.older_price_counts(tier.id).get(tier.id, 0) if tier else 0,
        uses_stripe=stripe_sync.is_configured(),
    ), status


@bp.route("/tiers/new", methods=["GET", "POST"])
@admin_required
def create_tier() -> Response | tuple[str, int]:
    """Add a tier (admins; audited); with Stripe, its product and prices are made there first."""
    form = TierForm(currency=current_app.config["CURRENCY"])
    if form.validate_on_submit():
        try:
            saved = services.create_tier(_tier_values(form), current_actor())
        except services.StripeFailed as exc:
            db.session.rollback()
            return _render_tier(form, None, exc.message, 502)
        except services.StaffError as exc:
            form.slug.errors = [exc.message]
        else:
            return _tier_saved(saved, _("Tier “%(name)s” added.", name=saved.tier.name))
    return _render_tier(form, None)


@bp.route("/tiers/<int:tier_id>", methods=["GET", "POST"])
@admin_required
def edit_tier(tier_id: int) -> Response | tuple[str, int]:
    """Change a tier (admins; audited); with Stripe, its new prices are made there first."""
    tier = db.session.get(Tier, tier_id)
    if tier is None:
        abort(404)
    form = TierForm(
        obj=tier,
        monthly_amount=str(to_decimal(tier.monthly_amount, tier.currency)),
        yearly_amount=str(to_decimal(tier.yearly_amount, tier.currency)),
    )
    if request.method == "GET":
        form.monthly_amount.data = str(to_decimal(tier.monthly_amount, tier.currency))
        form.yearly_amount.data = str(to_decimal(tier.yearly_amount, tier.currency))
    if form.validate_on_submit():
        try:
            saved = services.update_tier(tier, _tier_values(form), current_actor())
        except services.StripeFailed as exc:
            db.session.rollback()  # the tier is read again as it is stored
            return _render_tier(form, tier, exc.message, 502)
        except services.StaffError as exc:
            form.slug.errors = [exc.message]
        else:
            if not saved.changes:
                return redirect(url_for("staff.list_tiers"))
            return _tier_saved(saved, _("Tier “%(name)s” saved.", name=tier.name))
    return _render_tier(form, tier)


def _goal_values(form: GoalForm) -> services.GoalValues:
    measure = GoalMeasure(form.measure.data)
    return services.GoalValues(
        title=form.title.data.strip(),
        description=(form.description.data or "").strip(),
        measure=measure,
        target=form.target.value,
        currency=(form.currency.data or "").strip().upper() or None,
        position=form.position.data or 0,
        is_active=bool(form.is_active.data),
    )


@bp.get("/goals")
@admin_required
def list_goals() -> str:
    """Funding goals and their progress."""
    goals = admin_pages.goals_in_order()
    figures = headline.now_figures()
    progress = {g.goal.id: g for g in headline.goal_progress(figures)}
    return render_template("staff/list_goals.html", goals=goals, progress=progress)


@bp.route("/goals/new", methods=["GET", "POST"])
@admin_required
def create_goal() -> Response | tuple[str, int]:
    """Add a funding goal (admins; audited)."""
    form = GoalForm(currency=current_app.config["CURRENCY"])
    if form.validate_on_submit():
        goal = services.create_goal(_goal_values(form), current_actor())
        db.session.commit()
        flash(_("Goal “%(title)s” added.", title=goal.title), "success")
        return redirect(url_for("staff.list_goals"))
    status = 400 if form.is_submitted() else 200
    return render_template("staff/edit_goal.html", form=form, goal=None), status


@bp.route("/goals/<int:goal_id>", methods=["GET", "POST"])
@admin_required
def edit_goal(goal_id: int) -> Response | tuple[str, int]:
    """Change a funding goal (admins; audited)."""
    goal = db.session.get(FundingGoal, goal_id)
    if goal is None:
        abort(404)
    form = GoalForm(obj=goal)
    if request.method == "GET":
        form.measure.data = goal.measure.value
        form.target.data = (
            str(goal.target)
            if goal.measure is GoalMeasure.PATRONS
            else str(to_decimal(goal.target, goal.currency or "EUR"))
        )
    if form.validate_on_submit():
        if services.update_goal(goal, _goal_values(form), current_actor()):
            db.session.commit()
            flash(_("Goal “%(title)s” saved.", title=goal.title), "success")
        return redirect(url_for("staff.list_goals"))
    status = 400 if form.is_submitted() else 200
    return render_template("staff/edit_goal.html", form=form, goal=goal), status


@bp.route("/accounts", methods=["GET", "POST"])
@admin_required
def manage_staff() -> Response | tuple[str, int]:
    """Staff and admin accounts; add one by email (admins; audited)."""
    form = StaffAccountForm()
    if form.validate_on_submit():
        try:
            member, created = services.add_staff(
                form.email.normalized, Role(form.role.data), current_actor()
            )
        except services.StaffError as exc:
            form.role.errors = [exc.message]
        else:
            db.session.commit()
            flash(
                _(
                    "%(email)s is now %(role)s. They sign in with a code sent to that address.",
                    email=member.email,
                    role=member.role.value,
                ),
                "success",
            )
            return redirect(url_for("staff.manage_staff"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "staff/manage_staff.html", form=form, accounts=admin_pages.staff_accounts()
    ), status


@bp.get("/audit")
@admin_required
def list_audit() -> str:
    """The audit log, newest first, a page at a time (admins)."""
    form = AuditFilterForm(request.args)
    action = (form.action.data or "").strip() if form.validate() else ""
    page = admin_pages.audit_page(action, before=params.int_arg("before", 0))
    return render_template(
        "staff/list_audit.html",
        form=form,
        rows=page.rows,
        next_before=page.next_before,
        action=action,
    )
