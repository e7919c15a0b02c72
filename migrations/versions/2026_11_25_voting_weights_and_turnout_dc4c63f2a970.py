"""Voting: a weight snapshot on each ballot, turnout kept at closing, an index for results.

Revision ID: dc4c63f2a970
Revises: ed99edc3509c
Create Date: 2026-11-25 15:27:39.547865

Only adds. Every operation here is one SQLite can do in place (ADD COLUMN with a literal
default, CREATE INDEX, DROP COLUMN): a batch copy of ``votes`` would DROP the old table, and
with foreign keys on, SQLite cascades that drop into ``vote_choices``.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "dc4c63f2a970"
down_revision = "ed99edc3509c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Patrons who could vote, counted when the poll's closing is recorded.
    op.add_column("polls", sa.Column("eligible_count", sa.Integer(), nullable=True))
    # Millionths of a vote; existing ballots (all "one patron, one vote") count as one.
    op.add_column(
        "votes",
        sa.Column("weight", sa.BigInteger(), server_default="1000000", nullable=False),
    )
    op.create_index("ix_vote_choices_poll_option", "vote_choices", ["poll_id", "option_id"])


def downgrade() -> None:
    op.drop_index("ix_vote_choices_poll_option", table_name="vote_choices")
    op.drop_column("votes", "weight")
    op.drop_column("polls", "eligible_count")
