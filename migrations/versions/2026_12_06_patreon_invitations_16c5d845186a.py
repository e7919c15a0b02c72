"""Patreon invitations: each imported patron's invitation offer, and the latest reminder day sent.

Revision ID: 16c5d845186a
Revises: 6bf0f6ee28b6
Create Date: 2026-12-06 05:37:07.248433

Only adds nullable columns: ``offer_id`` (one invitation offer per patron, SET NULL if the offer
goes) and ``reminder_day`` (the latest reminder day claimed, so a reminder goes once per day).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "16c5d845186a"
down_revision = "6bf0f6ee28b6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patreon_patrons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offer_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reminder_day", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_patreon_patrons_offer_id"), ["offer_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_patreon_patrons_offer_id_offers"),
            "offers",
            ["offer_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_patreon_patrons_reminder_day_positive"), "reminder_day > 0"
        )


def downgrade() -> None:
    with op.batch_alter_table("patreon_patrons", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_patreon_patrons_reminder_day_positive"), type_="check"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_patreon_patrons_offer_id_offers"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("uq_patreon_patrons_offer_id"), type_="unique")
        batch_op.drop_column("reminder_day")
        batch_op.drop_column("offer_id")
