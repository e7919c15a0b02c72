"""Staff pages about members: the list, its CSV, one member's page, and their role."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import downloads
from supporters.billing import grants, membership
from supporters.billing import payments as billing_payments
from supporters.billing import subscriptions as billing_subscriptions
from supporters.billing.grant_models import Grant
from supporters.billing.models import Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor, current_member, staff_required
from supporters.members.forms import EmptyForm
from supporters.members.models import Member, Role
from supporters.staff import exports, member_list, services
from supporters.staff.forms import GrantForm, MemberFilterForm, RoleForm
from supporters.staff.queries import disputes, member_page
from supporters.staff.views.blueprint import bp


def _member_filters() -> tuple[MemberFilterForm, member_list.MemberFilter, bool]:
    form = MemberFilterForm(request.args)
    form.set_tiers(member_list.tier_choices())
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
        granted=grants.entitling_grants([m.id for m in result.members]),
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
            granted={},
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


def _grant_form(formdata: object = None) -> GrantForm:
    form = GrantForm(formdata=formdata) if formdata is not None else GrantForm()
    tiers = db.session.scalars(sa.select(Tier).where(Tier.is_active).order_by(Tier.position))
    form.set_tiers([(t.slug, t.name) for t in tiers])
    return form


def _render_member(
    member: Member, role_form: RoleForm, status: int = 200, grant_form: GrantForm | None = None
) -> tuple[str, int]:
    payments = billing_payments.payments_of(member.id, limit=200)
    standing, grant = membership.standing_of(member.id)
    return render_template(
        "staff/show_member.html",
        member=member,
        membership=standing,
        entitling_grant=grant,
        grants=grants.grants_of(member.id),
        grant_form=grant_form or _grant_form(),
        subscriptions=member_page.subscriptions_of(member.id),
        movements=member_page.movements_of(member.id),
        tiers=member_page.tier_names(),
        payments=payments,
        duplicates=billing_subscriptions.duplicates_cancelled(member.id),
        refunds=[p for p in payments if p.refunded_amount],
        disputes=disputes.disputes_of(member.id),
        now=utcnow(),
        votes=member_page.votes_of(member.id),
        proposals=member_page.proposals_of(member.id),
        history=member_page.changes_to(member.id) if current_member().is_admin else [],
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


@bp.post("/members/<int:member_id>/grants")
@admin_required
def grant_membership(member_id: int) -> Response | tuple[str, int]:
    """Give a member a complimentary membership of a tier (admins; audited)."""
    member = db.session.get(Member, member_id)
    if member is None:
        abort(404)
    form = _grant_form(request.form)
    role_form = RoleForm(formdata=None, role=member.role.value)
    if not form.validate_on_submit():
        return _render_member(member, role_form, 400, form)
    tier = db.session.scalar(sa.select(Tier).where(Tier.slug == form.tier.data))
    assert tier is not None  # the form only offers existing tiers
    ends_at = None
    if form.ends_on.data is not None:
        # Through the whole of its last day (UTC).
        ends_at = dt.datetime.combine(form.ends_on.data + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        grants.grant_membership(
            member, tier, ends_at=ends_at, reason=form.reason.data or "", actor=current_actor()
        )
    except grants.GrantError as exc:
        form.ends_on.errors = [exc.message]
        return _render_member(member, role_form, 400, form)
    db.session.commit()
    flash(
        _("%(name)s is a patron of %(tier)s, complimentary.", name=member.name, tier=tier.name),
        "success",
    )
    return redirect(url_for("staff.show_member", member_id=member.id))


@bp.post("/grants/<int:grant_id>/end")
@admin_required
def end_grant(grant_id: int) -> Response:
    """End a member's grant now (admins; audited)."""
    grant = db.session.get(Grant, grant_id)
    if grant is None:
        abort(404)
    member_id = grant.member_id
    if not EmptyForm().validate_on_submit():
        abort(400)
    if grants.end_grant(grant, current_actor()):
        db.session.commit()
        flash(_("The grant has ended."), "success")
    return redirect(url_for("staff.show_member", member_id=member_id))
