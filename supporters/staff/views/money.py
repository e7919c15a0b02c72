"""Staff pages about money at stake: renewals that failed, and disputes to answer."""

from __future__ import annotations

from flask import render_template

from supporters.billing import membership
from supporters.billing import subscriptions as billing_subscriptions
from supporters.db import utcnow
from supporters.members.auth import staff_required
from supporters.staff.queries import disputes
from supporters.staff.views.blueprint import bp


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
        open_disputes=disputes.open_disputes(),
        closed_disputes=disputes.closed_disputes(),
        now=utcnow(),
    )
