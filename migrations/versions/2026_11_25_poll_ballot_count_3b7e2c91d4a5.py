"""Voting: each poll keeps its number of ballots (turnout is read, not counted); each ballot
how often it was changed.

Revision ID: 3b7e2c91d4a5
Revises: 05859ebe95b9
Create Date: 2026-11-25 19:35:00.000000

Only adds (ADD COLUMN with a literal default, in place on SQLite too), then counts the ballots
already cast.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "3b7e2c91d4a5"
down_revision = "05859ebe95b9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "polls", sa.Column("ballot_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("votes", sa.Column("changes", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE polls SET ballot_count = "
        "(SELECT count(*) FROM votes WHERE votes.poll_id = polls.id)"
    )


def downgrade() -> None:
    op.drop_column("votes", "changes")
    op.drop_column("polls", "ballot_count")
