"""Staff pages: the overview, reports, members, exports, and (for admins) tiers, goals, staff
accounts and the audit log.

Staff read; admins also change. Every admin change is audited by the service it calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_percent
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import downloads, numbers, params
from supporters.audit import AuditEntry
from supporters.billing import membership, repricing, stripe_sync
from supporters.billing import payments as billing_payments
from supporters.billing import subscriptions as billing_subscriptions
from supporters.billing.models import FundingGoal, GoalMeasure, Subscription, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.i18n import date as format_date
from supporters.i18n import money
from supporters.members.auth import (
    admin_required,
    current_actor,
    current_member,
    staff_required,
)
from supporters.members.models import Member, Role
from supporters.money import to_decimal
from supporters.staff import charts, exports, member_list, queries, services
from supporters.staff.forms import (
    AuditFilterForm,
    GoalForm,
    MemberFilterForm,
    PaymentExportForm,
    RoleForm,
    StaffAccountForm,
    TierForm,
)
from supporters.staff.models import (
    COHORT_OFFSETS,
    Movement,
    MovementKind,
    month_number,
    month_start,
)
from supporters.voting.models import Poll, Topic, Vote

bp = Blueprint("staff", __name__, url_prefix="/staff")

MONTHS_ON_OVERVIEW = 12
# MRR movements that add revenue; the others (contraction, churn) take it away.
GAINS = {
    MovementKind.NEW,
    MovementKind.REACTIVATION,
    MovementKind.EXPANSION,
}
AUDIT_PAGE = 50


def percent(value: Fraction | None, places: int = 1) -> str:
    """A share as a percentage for the reader's locale, rounded half up; a dash when unknown."""
    if value is None:
        return "–"
    return str(format_percent(numbers.decimal(value, places + 2), f"#,##0.{'0' * places}%"))


def signed_money(amount: int, currency: str) -> str:
    return ("+" if amount > 0 else "") + money(amount, currency)


def month_label(day: dt.date) -> str:
    return format_date(day, "MMM yyyy")


def short_month(day: dt.date) -> str:
    return format_date(day, "MMM yy")


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "percent": percent,
        "signed_money": signed_money,
        "month_label": month_label,
        "round_half_up": numbers.round_half_up,
        "cohort_offsets": COHORT_OFFSETS,
    }


def _money_format(currency: str) -> Callable[[int], str]:
    return lambda amount: money(amount, currency)


# -- overview ------------------------------------------------------------------------------------


@bp.get("/")
@staff_required
def overview() -> str:
    """Are we growing, who is leaving, what is failing: the figures staff open every Monday."""
    now = utcnow()
    figures = queries.now_figures(now)
    months = queries.last_months(MONTHS_ON_OVERVIEW, now)
    patrons = queries.patron_months(months)
    revenue = queries.revenue_months(months)
    labels = [short_month(m.start) for m in patrons]
    complete = [m for m in patrons[:-1] if m.churn_rate is not None]
    failed_count, failed_amounts = queries.failed_payments_in(month_number(now))
    chart = {
        "patrons": charts.line_chart(
            _("Active patrons at the end of each month"),
            labels,
            [charts.Series(_("Patrons"), [m.patrons_at_end for m in patrons])],
        ),
        "joins": charts.bar_chart(
            _("New, returning and cancelled patrons per month"),
            labels,
            [
                charts.Series(_("New"), [m.new for m in patrons]),
                charts.Series(_("Returning"), [m.reactivated for m in patrons], tone=3),
                charts.Series(_("Cancelled"), [m.churned for m in patrons], tone=2),
            ],
        ),
        "mrr": {
            currency: charts.line_chart(
                _("Monthly recurring revenue in %(currency)s", currency=currency),
                labels,
                [charts.Series(_("MRR"), [m.mrr_at_end for m in series])],
                _money_format(currency),
            )
            for currency, series in revenue.items()
        },
        "received": {
            currency: charts.bar_chart(
                _("Money received per month in %(currency)s", currency=currency),
                labels,
                [
                    charts.Series(
                        _("Subscriptions"), [m.paid - m.refunded - m.disputed for m in series]
                    ),
                    charts.Series(_("Gifts"), [m.gifts for m in series]),
                ],
                _money_format(currency),
            )
            for currency, series in revenue.items()
        },
    }
    return render_template(
        "staff/overview.html",
        now=now,
        figures=figures,
        patrons=patrons,
        revenue=revenue,
        last_complete=complete[-1] if complete else None,
        goals=queries.goal_progress(figures),
        failed_count=failed_count,
        failed_amounts=failed_amounts,
        past_due=queries.past_due_count(),
        disputes=queries.disputes_due(),
        turnout=queries.current_poll_turnout(figures, now),
        chart=chart,
        payment_form=PaymentExportForm(formdata=None),
    )


# -- beyond the basics ---------------------------------------------------------------------------


@bp.get("/reports")
@staff_required
def reports() -> str:
    """MRR movements, cohort retention, lifetime value, failed payments and who is at risk."""
    now = utcnow()
    figures = queries.now_figures(now)
    months = queries.last_months(MONTHS_ON_OVERVIEW, now)
    revenue = queries.revenue_months(months)
    failures = queries.failure_months(months)
    labels = [short_month(month_start(m)) for m in months]
    movement_charts = {}
    for currency, series in revenue.items():
        gained = [sum(v for k, v in m.movements.items() if k in GAINS) for m in series]
        lost = [sum(v for k, v in m.movements.items() if k not in GAINS) for m in series]
        movement_charts[currency] = charts.bar_chart(
            _("MRR gained and lost per month in %(currency)s", currency=currency),
            labels,
            [charts.Series(_("Gained"), gained), charts.Series(_("Lost"), lost)],
            _money_format(currency),
        )
    failure_charts = {}
    for currency in sorted({f.currency for f in failures}):
        by_month = {f.month: f for f in failures if f.currency == currency}
        failure_charts[currency] = charts.bar_chart(
            _("Failed payments in %(currency)s by the month they first failed", currency=currency),
            labels,
            [
                charts.Series(
                    _("Recovered"), [getattr(by_month.get(m), "recovered_count", 0) for m in months]
                ),
                charts.Series(
                    _("Not recovered"),
                    [getattr(by_month.get(m), "failed_count", 0) for m in months],
                ),
            ],
        )
    return render_template(
        "staff/reports.html",
        revenue=revenue,
        movement_charts=movement_charts,
        cohorts=queries.cohorts(queries.last_months(18, now), now),
        lifetime=queries.lifetime_values(figures, now),
        failures=failures,
        failure_charts=failure_charts,
        at_risk=queries.at_risk(),
        kinds=queries.MRR_KINDS,
        payment_form=PaymentExportForm(formdata=None),
    )


@bp.get("/reports/<name>.csv")
@staff_required
def download_report(name: str) -> Response:
    """One report table or chart's figures as CSV."""
    dataset = exports.DATASETS.get(name)
    if dataset is None:
        abort(404)
    stamp = utcnow().strftime("%Y-%m-%d")
    return downloads.stream_csv(f"{name}-{stamp}.csv", dataset.header, dataset.rows())


@bp.get("/payments.csv")
@staff_required
def export_payments() -> Response | tuple[str, int]:
    """Payments invoiced in a date range, as CSV."""
    form = PaymentExportForm(request.args)
    if not form.validate():
        return render_template("staff/export_payments.html", payment_form=form), 400
    start, end = form.date_from.data, form.date_to.data
    return downloads.stream_csv(
        f"payments-{start}-{end}.csv", exports.PAYMENT_HEADER, exports.payment_rows(start, end)
    )


# -- members ------------------------------------------------------------------------------------


def _member_filters() -> tuple[MemberFilterForm, member_list.MemberFilter, bool]:
    form = MemberFilterForm(request.args)
    form.set_tiers(list(db.session.execute(sa.select(Tier.id, Tier.name).order_by(Tier.position))))
    is_valid = form.validate()
    if not is_valid:
        return form, member_list.MemberFilter(), False
    filters = member_list.MemberFilter(
        q=form.q.data or "",
        status=form.status.data or "",
        tier=form.tier.data or "",
        interval=form.interval.data or "",
        joined_from=form.joined_from.data,
        joined_to=form.joined_to.data,
        sort=form.sort.data or "newest",
    )
    return form, filters, True


def _filter_args(**extra: str) -> dict[str, str]:
    args = {k: v for k, v in request.args.items() if v and k not in ("after", "before")}
    args.update(extra)
    return args


@bp.get("/members")
@staff_required
def list_members() -> tuple[str, int]:
    """Members, searchable and filterable, a page at a time."""
    form, filters, is_valid = _member_filters()
    try:
        result = member_list.page(
            filters, after=request.args.get("after", ""), before=request.args.get("before", "")
        )
    except member_list.BadCursor:
        abort(400)
    return render_template(
        "staff/list_members.html",
        form=form,
        page=result,
        statuses={m.id: result.current.get(m.id) for m in result.members},
        filter_args=_filter_args(),
        is_first=not (request.args.get("after") or request.args.get("before")),
    ), (200 if is_valid else 400)


@bp.get("/members.csv")
@staff_required
def export_members() -> Response | tuple[str, int]:
    """The members list as filtered, as CSV (every page)."""
    form, filters, is_valid = _member_filters()
    if not is_valid:
        return render_template(
            "staff/list_members.html",
            form=form,
            page=member_list.Page([], {}, None, None),
            statuses={},
            filter_args=_filter_args(),
            is_first=True,
        ), 400
    stamp = utcnow().strftime("%Y-%m-%d")
    return downloads.stream_csv(
        f"members-{stamp}.csv", exports.MEMBER_HEADER, exports.member_rows(filters)
    )


@bp.get("/members/<int:member_id>")
@staff_required
def show_member(member_id: int) -> tuple[str, int]:
    """One member: subscriptions and their history, payments, refunds, votes and proposals."""
    member = db.session.get(Member, member_id)
    if member is None:
        abort(404)
    return _render_member(member, RoleForm(formdata=None, role=member.role.value))


def _render_member(member: Member, role_form: RoleForm, status: int = 200) -> tuple[str, int]:
    subscriptions = db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.member_id == member.id)
        .options(sa.orm.joinedload(Subscription.tier))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ).all()
    movements = db.session.scalars(
        sa.select(Movement)
        .where(Movement.member_id == member.id, Movement.kind != MovementKind.OBSERVED)
        .order_by(Movement.occurred_at, Movement.id)
    ).all()
    payments = billing_payments.payments_of(member.id, limit=200)
    votes = db.session.execute(
        sa.select(Vote.created_at, Poll.id, Poll.question)
        .join(Poll, Poll.id == Vote.poll_id)
        .where(Vote.member_id == member.id)
        .order_by(Vote.created_at.desc())
        .limit(100)
    ).all()
    proposals = db.session.scalars(
        sa.select(Topic)
        .where(Topic.proposed_by_id == member.id)
        .order_by(Topic.created_at.desc())
        .limit(100)
    ).all()
    history: list[AuditEntry] = []
    if current_member().is_admin:
        history = list(
            db.session.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.target_type == "member", AuditEntry.target_id == str(member.id))
                .order_by(AuditEntry.id.desc())
                .limit(50)
            )
        )
    tiers = dict(db.session.execute(sa.select(Tier.id, Tier.name)).all())
    return render_template(
        "staff/show_member.html",
        member=member,
        membership=membership.membership_of(member.id),
        subscriptions=subscriptions,
        movements=movements,
        tiers=tiers,
        payments=payments,
        duplicates=billing_subscriptions.duplicates_cancelled(member.id),
        refunds=[p for p in payments if p.refunded_amount],
        disputes=queries.disputes_of(member.id),
        now=utcnow(),
        votes=votes,
        proposals=proposals,
        history=history,
        role_form=role_form,
    ), status


@bp.post("/members/<int:member_id>/role")
@admin_required
def change_role(member_id: int) -> Response | tuple[str, int]:
    """Make a member staff or admin, or take the role back (admins; audited)."""
    member = db.session.get(Member, member_id)
    if member is None:
        abort(404)
    form = RoleForm()
    if not form.validate_on_submit():
        return _render_member(member, form, 400)
    try:
        changed = services.change_role(member, Role(form.role.data), current_actor())
    except services.StaffError as exc:
        form.role.errors = [exc.message]
        return _render_member(member, form, 400)
    db.session.commit()
    if changed:
        flash(_("%(name)s is now %(role)s.", name=member.name, role=member.role.value), "success")
    return redirect(url_for("staff.show_member", member_id=member.id))


@bp.get("/failed-payments")
@staff_required
def failed_payments() -> str:
    """Patrons whose renewal failed: who to contact, and how long their grace period lasts."""
    subscriptions = billing_subscriptions.failed_payment_subscriptions()
    return render_template(
        "staff/failed_payments.html",
        subscriptions=subscriptions,
        statuses={s.id: membership.status_of(s) for s in subscriptions},
        due={s.id: membership.renewal_due_at(s) for s in subscriptions},
        grace=membership.grace_period(),
    )


@bp.get("/disputes")
@staff_required
def list_disputes() -> str:
    """Open disputes, the one to answer first at the top, and those decided lately."""
    return render_template(
        "staff/list_disputes.html",
        open_disputes=queries.open_disputes(),
        closed_disputes=queries.closed_disputes(),
        now=utcnow(),
    )


# -- admins: tiers, goals, staff accounts, audit log -------------------------------------------


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
    tiers = db.session.scalars(sa.select(Tier).order_by(Tier.position, Tier.id)).all()
    counts = {t.tier_id: t.subscriptions for t in queries.now_figures().by_tier}
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
    goals = db.session.scalars(sa.select(FundingGoal).order_by(FundingGoal.position)).all()
    figures = queries.now_figures()
    progress = {g.goal.id: g for g in queries.goal_progress(figures)}
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
    accounts = db.session.scalars(
        sa.select(Member)
        .where(Member.role.in_((Role.STAFF, Role.ADMIN)))
        .order_by(Member.role, Member.email)
    ).all()
    status = 400 if form.is_submitted() else 200
    return render_template("staff/manage_staff.html", form=form, accounts=accounts), status


@bp.get("/audit")
@admin_required
def list_audit() -> str:
    """The audit log, newest first, a page at a time (admins)."""
    form = AuditFilterForm(request.args)
    statement = sa.select(AuditEntry, Member).outerjoin(Member, Member.id == AuditEntry.actor_id)
    action = (form.action.data or "").strip() if form.validate() else ""
    if action:
        statement = statement.where(AuditEntry.action.startswith(action, autoescape=True))
    before = params.int_arg("before", 0)
    if before:
        statement = statement.where(AuditEntry.id < before)
    rows: Sequence[Any] = db.session.execute(
        statement.order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE + 1)
    ).all()
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return render_template(
        "staff/list_audit.html",
        form=form,
        rows=rows,
        next_before=rows[-1][0].id if more and rows else None,
        action=action,
    )
