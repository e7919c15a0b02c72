"""Billing: webhook events ignored on purpose keep their reason.

Revision ID: 8cbff54fce44
Revises: 899a878ec2bb
Create Date: 2026-12-06 10:00:00.000000

Only adds a column with a literal default (in place on SQLite too). Events recorded before
keep an empty reason; those skipped as another integration's said so in ``error``, which is
moved to the new column.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "8cbff54fce44"
down_revision = "899a878ec2bb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "stripe_events",
        sa.Column("ignored_reason", sa.String(length=500), server_default="", nullable=False),
    )
    op.execute(
        "UPDATE stripe_events SET ignored_reason = substr(error, 10), error = '' "
        "WHERE error LIKE 'skipped: %'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE stripe_events SET error = 'skipped: ' || ignored_reason WHERE ignored_reason <> ''"
    )
    op.drop_column("stripe_events", "ignored_reason")
