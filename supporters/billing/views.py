"""The public support page: tiers, funding goals and how to join."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template

from supporters.billing import services
from supporters.billing.models import FundingGoal, Tier
from supporters.extensions import db

bp = Blueprint("billing", __name__)


@bp.get("/")
def support() -> str:
    """Show what supporting the newsroom costs and what it pays for."""
    tiers = db.session.scalars(
        sa.select(Tier).where(Tier.is_active).order_by(Tier.position, Tier.monthly_amount)
    ).all()
    goals = db.session.scalars(
        sa.select(FundingGoal).where(FundingGoal.is_active).order_by(FundingGoal.position)
    ).all()
    progress = {goal.id: services.goal_progress(goal) for goal in goals}
    return render_template("billing/support.html", tiers=tiers, goals=goals, progress=progress)
