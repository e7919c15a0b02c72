"""Staff pages: the overview every Monday starts with."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from supporters.billing import membership
from supporters.billing import services as billing_services
from supporters.members.auth import staff_required
from supporters.staff import queries

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.get("/")
@staff_required
def overview() -> str:
    """Members, patrons, recurring revenue and money received at a glance."""
    currency = current_app.config["CURRENCY"]
    return render_template(
        "staff/overview.html",
        member_count=queries.member_count(),
        by_status=queries.subscriptions_by_status(),
        patron_count=billing_services.patron_count(),
        monthly_revenue=billing_services.monthly_revenue(currency),
        currency=currency,
        paid_totals=queries.paid_totals_by_currency(),
        recent_members=queries.recent_members(),
    )


@bp.get("/failed-payments")
@staff_required
def failed_payments() -> str:
    """Patrons whose renewal failed: who to contact, and how long their grace period lasts."""
    subscriptions = billing_services.failed_payment_subscriptions()
    return render_template(
        "staff/failed_payments.html",
        subscriptions=subscriptions,
        statuses={s.id: membership.status_of(s) for s in subscriptions},
        due={s.id: membership.renewal_due_at(s) for s in subscriptions},
        grace=membership.grace_period(),
    )
